"""The operator's views of the SQLite Store by job (`notifierctl jobs`, `notifierctl retry JOB`):
statements run on a connection the Store hands in, inside its transaction for the writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from notifierd.states import RETRYABLE_STATES, DeliveryState
from notifierd.store.base import JobSummary, Retried
from notifierd.store.counts import CountChanges

#: A delivery's time-to-live after a retry when its channel is no longer configured.
DEFAULT_TTL = 86400.0
RETRYABLE = frozenset(state.value for state in RETRYABLE_STATES)
QUEUED = DeliveryState.QUEUED.value


def requeue_rows(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[int, str, str]],
    now: float,
    ttl_for: Mapping[str, float],
    changes: CountChanges,
) -> int:
    """Put the (id, channel, state) deliveries back in the queue, due now, with their attempts
    reset and a fresh time-to-live. The rows must be retryable. Returns how many."""
    for delivery_id, channel, state in rows:
        conn.execute(
            "UPDATE deliveries SET state = 'queued', attempts = 0, due_at = ?,"
            " expires_at = ?, lease_token = NULL, leased_until = NULL, updated_at = ?"
            " WHERE id = ?",
            (now, now + ttl_for.get(channel, DEFAULT_TTL), now, delivery_id),
        )
        changes.move(channel, state, QUEUED)
    return len(rows)


def requeue_each(
    conn: sqlite3.Connection,
    ids: Sequence[int],
    now: float,
    *,
    by_job: bool,
    ttl_for: Mapping[str, float],
    changes: CountChanges,
) -> dict[int, Retried | None]:
    column = "job_id" if by_job else "id"
    done: dict[int, Retried | None] = {}
    for item in ids:
        rows = conn.execute(
            f"SELECT id, channel, state FROM deliveries WHERE {column} = ?", (item,)
        ).fetchall()
        if not rows:
            done[item] = None
            continue
        retryable = [row for row in rows if row[2] in RETRYABLE]
        untouched: dict[str, int] = {}
        for _, _, state in rows:
            if state not in RETRYABLE:
                untouched[state] = untouched.get(state, 0) + 1
        done[item] = Retried(requeue_rows(conn, retryable, now, ttl_for, changes), untouched)
    return done


def list_jobs(
    conn: sqlite3.Connection, channel: str | None, state: str | None, limit: int
) -> list[JobSummary]:
    clauses: list[str] = []
    arguments: list[Any] = []
    if channel is not None:
        clauses.append("channel = ?")
        arguments.append(channel)
    if state is not None:
        clauses.append("state = ?")
        arguments.append(state)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    # Newest first by id: the job index walked backwards, not a sort of every delivery.
    job_ids = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT job_id FROM deliveries{where} ORDER BY job_id DESC LIMIT ?",
            (*arguments, limit),
        )
    ]
    if not job_ids:
        return []
    jobs: dict[int, dict[str, Any]] = {}
    marks = ",".join("?" * len(job_ids))
    # SQLite takes the bare column last_error from the row that holds MAX(updated_at).
    for job_id, job_channel, created_at, row_state, number, updated_at, last_error in conn.execute(
        "SELECT d.job_id, j.channel, j.created_at, d.state, COUNT(*), MAX(d.updated_at),"
        " d.last_error FROM deliveries d JOIN jobs j ON j.id = d.job_id"
        f" WHERE d.job_id IN ({marks}) GROUP BY d.job_id, d.state",
        job_ids,
    ):
        job = jobs.setdefault(
            job_id,
            {"channel": job_channel, "created_at": created_at, "states": {}, "errors": []},
        )
        job["states"][row_state] = number
        job["errors"].append((updated_at, last_error))
    return [_summary(job_id, jobs[job_id]) for job_id in job_ids if job_id in jobs]


def _summary(job_id: int, job: dict[str, Any]) -> JobSummary:
    errors = sorted(job["errors"], key=lambda pair: pair[0], reverse=True)
    return JobSummary(
        id=job_id,
        channel=job["channel"],
        created_at=job["created_at"],
        updated_at=errors[0][0],
        states=job["states"],
        last_error=next((error for _, error in errors if error), None),
    )
