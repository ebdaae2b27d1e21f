"""Worker types. Built-in and third-party ones are found the same way: the entry-point group
`notifierd.workers` (see `registry`)."""
