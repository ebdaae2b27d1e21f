"""A backlog of delayed deliveries, written straight into a new Store database.

The rows are exactly what `SqliteStore.add` writes (its own schema, made by
`notifierd.store.sqlite.schema.migrate`, one job and one queued delivery per message, due
`delay` seconds from now), but inserted by one INSERT ... SELECT over a recursive CTE with
`synchronous=OFF`: a million rows take seconds instead of the minutes a million POSTs would.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from notifierd.store.sqlite.schema import migrate


def write_backlog(database: Path, channel: str, count: int, delay: float, ttl: float) -> float:
    """Create `database` holding `count` deliveries of `channel` due in `delay` seconds.
    Returns the seconds it took."""
    began = time.perf_counter()
    database.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        migrate(conn)
        conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO jobs (id, channel, message, created_at)"
            " SELECT i, ?, 'backlog message ' || i, ? FROM n",
            (count, channel, now),
        )
        conn.execute(
            "INSERT INTO deliveries (id, job_id, channel, recipient, state, due_at, expires_at,"
            " created_at, updated_at)"
            " SELECT id, id, channel, '', 'queued', ?, ?, ?, ? FROM jobs",
            (now + delay, now + ttl, now, now),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - began
