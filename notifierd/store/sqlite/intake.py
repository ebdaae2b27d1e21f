"""Inserting the jobs of one write transaction (the SQLite Store's intake): all of them and
their deliveries at once (one multi-row INSERT per table, `rows.py`), or, should that fail,
each on its own so that one bad job fails alone. A job whose idempotency key is known (stored,
or earlier in the same transaction) is not inserted again (`idempotency.py`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from notifierd.store.base import NewJob
from notifierd.store.counts import QUEUED, CountChanges
from notifierd.store.sqlite import idempotency
from notifierd.store.sqlite.rows import RowsInsert

#: (succeeded, job id or the exception): what each job's caller gets.
Result = tuple[bool, Any]
Operation = Callable[[sqlite3.Connection], Any]
#: Runs an operation inside a savepoint of the transaction (`GroupCommit.run`).
RunOperation = Callable[[sqlite3.Connection, Operation], Result]

SAVEPOINT = "SAVEPOINT op"
RELEASE = "RELEASE op"
ROLLBACK = "ROLLBACK TO op"

INSERT_JOBS = RowsInsert("INSERT INTO jobs (id, channel, message, created_at)", "(?, ?, ?, ?)")
INSERT_DELIVERIES = RowsInsert(
    "INSERT INTO deliveries (job_id, channel, recipient, state, due_at, expires_at, created_at,"
    " updated_at)",
    "(?, ?, ?, 'queued', ?, ?, ?, ?)",
)


class JobInserter:
    """Numbers and inserts jobs. Only the writer inserts jobs, so the id the next one gets is
    known in advance; `forget_ids` after a rollback makes it read the table again."""

    def __init__(self) -> None:
        self._next_job_id: int | None = None

    def forget_ids(self) -> None:
        self._next_job_id = None

    def insert(
        self,
        conn: sqlite3.Connection,
        jobs: Sequence[tuple[NewJob, float, object]],
        changes: CountChanges,
        run: RunOperation,
    ) -> list[Result]:
        """Each (job, now, _)'s result, in order."""
        if not jobs:
            return []
        new_jobs = [(job, now) for job, now, _ in jobs]
        if not idempotency.has_keys([job for job, _ in new_jobs]):  # the usual case
            return self._insert_new(conn, new_jobs, changes, run)
        key_plan = idempotency.plan(conn, [job for job, _ in new_jobs])
        fresh = [new_jobs[index] for index in key_plan.fresh]
        inserted = self._insert_new(conn, fresh, changes, run)
        return idempotency.results(key_plan, [job for job, _ in new_jobs], inserted)

    def _insert_new(
        self,
        conn: sqlite3.Connection,
        jobs: list[tuple[NewJob, float]],
        changes: CountChanges,
        run: RunOperation,
    ) -> list[Result]:
        if not jobs:
            return []
        conn.execute(SAVEPOINT)
        try:
            first = self._next_job_id
            if first is None:
                first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs").fetchone()[0]
            numbered = [(first + k, job, now) for k, (job, now) in enumerate(jobs)]
            INSERT_JOBS.run(conn, [(i, job.channel, job.message, now) for i, job, now in numbered])
            INSERT_DELIVERIES.run(
                conn, [row for i, job, now in numbered for row in delivery_rows(i, job, now)]
            )
            keys = [row for i, job, _ in numbered for row in idempotency.key_rows(i, job)]
            if keys:
                idempotency.INSERT_KEYS.run(conn, keys)
        except sqlite3.Error:
            conn.execute(ROLLBACK)
            conn.execute(RELEASE)
            self._next_job_id = None
            return [run(conn, _insert_one(job, now, changes)) for job, now in jobs]
        conn.execute(RELEASE)
        count_added(changes, [(job, now) for _, job, now in numbered])
        self._next_job_id = first + len(numbered)
        return [(True, i) for i, _, _ in numbered]


def _insert_one(job: NewJob, now: float, changes: CountChanges) -> Operation:
    def run(conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "INSERT INTO jobs (channel, message, created_at) VALUES (?, ?, ?)",
            (job.channel, job.message, now),
        )
        job_id = cursor.lastrowid
        assert job_id is not None
        INSERT_DELIVERIES.run(conn, delivery_rows(job_id, job, now))
        idempotency.INSERT_KEYS.run(conn, idempotency.key_rows(job_id, job))
        count_added(changes, [(job, now)])
        return job_id

    return run


def count_added(changes: CountChanges, jobs: list[tuple[NewJob, float]]) -> None:
    # One change per channel, not per job: this is on every message's path.
    added: dict[str, int] = {}
    for job, now in jobs:
        added[job.channel] = added.get(job.channel, 0) + len(job.recipients)
        if job.delay > 0:
            for _ in job.recipients:
                changes.queued_until(job.channel, now + job.delay, now)
    for channel, number in added.items():
        changes.move(channel, None, QUEUED, number)


def delivery_rows(job_id: int, job: NewJob, now: float) -> list[tuple[Any, ...]]:
    due_at = now + job.delay
    expires_at = now + job.ttl
    return [
        (job_id, job.channel, recipient, due_at, expires_at, now, now)
        for recipient in job.recipients
    ]
