"""The SQLite Store's tables and indexes. Created if missing at every start."""

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
-- The journal: finished deliveries are pruned by age (journal_retention).
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (updated_at)
    WHERE state IN ('delivered', 'failed', 'dead', 'expired');
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
