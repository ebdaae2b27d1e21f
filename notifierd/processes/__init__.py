"""Worker processes: the code that runs in them (`child`) and their handles in the parent
(`handle`)."""
