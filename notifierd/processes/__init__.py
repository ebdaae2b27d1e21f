"""Worker processes: the code that runs in them (`child`), their handles in the parent
(`handle`), and the messages between the two (`wire`)."""
