"""The SQLite Store's two connections: the writer's (opened through the guard, its schema
brought up to date) and the reader's, on a thread of its own so that a slow scan for a listing
never stalls intake (WAL lets them run side by side)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from notifierd.errors import StoreError
from notifierd.store.counts import DeliveryCounts
from notifierd.store.sqlite.guard import DatabaseGuard
from notifierd.store.sqlite.schema import SCHEMA_VERSION, migrate

log = structlog.get_logger("notifierd.store")

T = TypeVar("T")


def connect_writer(path: Path, guard: DatabaseGuard) -> sqlite3.Connection:
    """The writer's connection: checked by the guard before and after, migrated."""
    guard.before_open()
    # Statements run on the loop's thread, the COMMIT on the writer's: never both at once.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        found = migrate(conn)
        guard.after_open(conn)
    except BaseException:
        conn.close()
        guard.release()
        raise
    if found < SCHEMA_VERSION:
        log.info(
            "store.migrated", database=str(path), from_version=found, to_version=SCHEMA_VERSION
        )
    return conn


def count_all(conn: sqlite3.Connection, counts: DeliveryCounts) -> None:
    """The one full count: from here on, the counts follow the transitions."""
    now = time.time()
    by_state = conn.execute(
        "SELECT channel, state, COUNT(*) FROM deliveries GROUP BY 1, 2"
    ).fetchall()
    # The cursor itself, not its fetchall(): a million rows as tuples would cost the
    # parent ~150 MB at every start-up with a large backlog.
    due_later = conn.execute(
        "SELECT channel, due_at FROM deliveries WHERE state = 'queued' AND due_at > ?", (now,)
    )
    counts.reset(by_state, due_later)


class Reader:
    """The read-only connection, used on its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)

    async def close(self) -> None:
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown()

    async def read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, operation, conn)
        except sqlite3.Error as exc:
            raise StoreError(f"could not read {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA query_only=ON")
        # A first read opens the WAL, so that reads go on should the files leave their paths
        # (a connection that has not read yet cannot open them then).
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
