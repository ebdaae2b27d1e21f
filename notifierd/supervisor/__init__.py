"""Worker processes: the code that runs in them (`child`), their handles in the parent
(`process`), and the per-channel runner that dispatches deliveries and restarts them
(`channel`)."""
