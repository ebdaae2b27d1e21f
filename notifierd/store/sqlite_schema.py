"""The SQLite Store's tables and indexes. Created if missing at every start."""

#: The condition of a finished delivery, as the partial index deliveries_done states it.
FINISHED = "state NOT IN ('queued', 'leased')"

SCHEMA = """
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
