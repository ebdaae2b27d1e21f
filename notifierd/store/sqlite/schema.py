"""The SQLite Store's schema, as a list of migrations, and what applies them at start-up.

A database's `PRAGMA user_version` is the number of migrations it has had. At every start the
missing ones run in one transaction, so a database is either at its old version or at the new
one, never in between. To change the schema, append one entry to `MIGRATIONS` (SQL statements
separated by semicolons) and never edit one that has shipped: databases in the field have had
it already. Write a migration so that it can run again on a database that has it (IF NOT
EXISTS, OR IGNORE; `migrate` skips an ADD COLUMN of a column the table has): a database saved
with `sqlite3 .dump` and loaded again has lost its version, and its migrations run once more.
A database whose version is above `SCHEMA_VERSION` was written by a newer notifierd and is
refused by `guard` before anything touches it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

_ADD_COLUMN = re.compile(r"\s*ALTER\s+TABLE\s+\S+\s+ADD\s+(COLUMN\s+)?", re.IGNORECASE)

#: The condition of a finished delivery, as the partial index deliveries_done states it.
FINISHED = "state NOT IN ('queued', 'leased')"

#: The schema of notifierd 0.1.0, which had no version (its databases are at user_version 0 with
#: all of this in place, hence IF NOT EXISTS).
_BASELINE = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    due_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token INTEGER,
    leased_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- Claiming reads the first due rows of one channel: O(log n) whatever the backlog.
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (channel, due_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS deliveries_expiry ON deliveries (expires_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (leased_until) WHERE state = 'leased';
CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job_id);
-- The journal: finished deliveries are pruned by age (journal_retention). "Finished" is
-- written as NOT IN the two unfinished states: SQLite tests an IN list of three or more values
-- through a temporary table it builds for the purpose, and a partial index's condition is
-- tested at every INSERT and UPDATE of a delivery (three times per message, each building and
-- dropping a table). The prune query repeats this condition word for word, or the index would
-- not serve it. (An earlier schema had deliveries_finished, with the IN list: dropped.)
DROP INDEX IF EXISTS deliveries_finished;
CREATE INDEX IF NOT EXISTS deliveries_done ON deliveries (updated_at)
    WHERE state NOT IN ('queued', 'leased');
-- One row per attempt made: when it ended, how, how long it took, what the remote said.
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    finished_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    duration REAL NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
CREATE TABLE IF NOT EXISTS flags (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

#: The database's identity: the state dir's marker file names it, so that a database replaced
#: by another is noticed at start-up (guard.py).
_IDENTITY = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('database_id', lower(hex(randomblob(16))));
"""

#: Idempotent sends: a key per channel names the job it made; `digest` is of the message and
#: delay it was made with. Pruned with its job.
_IDEMPOTENCY = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (channel, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_job ON idempotency_keys (job_id);
"""

#: What several hosts sharing a Store need (DESIGN §9), kept by the SQLite Store too so that
#: both backends have one behaviour: the owner (node id) of a delivery's last lease, a number
#: that moves with every change of a flag, and the channels' shared states.
_SHARED_STATE = """
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
INSERT OR IGNORE INTO meta (name, value) VALUES ('flags_version', '0');
CREATE TABLE IF NOT EXISTS channel_states (
    channel TEXT PRIMARY KEY,
    cooldown_until REAL,
    misconfigured TEXT
) WITHOUT ROWID;
"""

#: Migration N (counting from 1) brings a database from version N - 1 to N. Append only.
MIGRATIONS: tuple[str, ...] = (_BASELINE, _IDENTITY, _IDEMPOTENCY, _SHARED_STATE)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to `SCHEMA_VERSION` in one transaction (`conn` in autocommit
    mode, as `isolation_level=None` makes it). Returns the version it had."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)
        for script in MIGRATIONS[found:]:
            for statement in _statements(script):
                _execute(conn, statement)
        if found < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _execute(conn: sqlite3.Connection, statement: str) -> None:
    try:
        conn.execute(statement)
    except sqlite3.OperationalError as exc:
        # ADD COLUMN has no IF NOT EXISTS: on a database that has the column (loaded from a
        # dump, its version lost), the statement is done already.
        if not (_ADD_COLUMN.match(statement) and "duplicate column name" in str(exc)):
            raise


def _statements(script: str) -> Iterator[str]:
    """The statements of a script one by one: `executescript` would commit the transaction
    first. SQLite's own parser says where a statement ends (a semicolon in a comment does not
    end one)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
