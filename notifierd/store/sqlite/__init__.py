"""The SQLite backend of the Store: one file, one writer (the parent), group commit."""

from notifierd.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
