"""The delivery journal in the SQLite Store: deliveries and jobs as the operator reads them, and
the pruning of finished ones. Statements run on a connection the Store hands in (the reader's,
or the writer's inside its transaction for `prune`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from notifierd.store.base import AttemptRecord, DeliveryRecord, JobRecord
from notifierd.store.counts import CountChanges
from notifierd.store.sqlite.schema import FINISHED

_RECORD_COLUMNS = (
    "id, job_id, channel, recipient, state, attempts, due_at, expires_at, created_at,"
    " updated_at, last_error"
)


def list_deliveries(
    conn: sqlite3.Connection, channel: str | None, state: str | None, limit: int
) -> list[DeliveryRecord]:
    clauses, arguments = filters(channel=channel, state=state)
    rows = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM deliveries{clauses}"
        " ORDER BY updated_at DESC, id DESC LIMIT ?",
        (*arguments, limit),
    ).fetchall()
    return [DeliveryRecord(*row) for row in rows]


def get_job(conn: sqlite3.Connection, job_id: int) -> JobRecord | None:
    job = conn.execute(
        "SELECT id, channel, message, created_at FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    if job is None:
        return None
    rows = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM deliveries WHERE job_id = ? ORDER BY id", (job_id,)
    ).fetchall()
    history: dict[int, list[AttemptRecord]] = {row[0]: [] for row in rows}
    if rows:
        marks = ",".join("?" * len(rows))
        for delivery_id, *attempt in conn.execute(
            "SELECT delivery_id, attempt, finished_at, outcome, duration, error"
            f" FROM attempts WHERE delivery_id IN ({marks}) ORDER BY rowid",
            [row[0] for row in rows],
        ):
            history[delivery_id].append(AttemptRecord(*attempt))
    return JobRecord(
        id=job[0],
        channel=job[1],
        message=job[2],
        created_at=job[3],
        deliveries=[(DeliveryRecord(*row), history[row[0]]) for row in rows],
    )


def prune(conn: sqlite3.Connection, before: float, limit: int, changes: CountChanges) -> int:
    rows = conn.execute(
        f"SELECT id, channel, state FROM deliveries WHERE {FINISHED} AND updated_at < ? LIMIT ?",
        (before, limit),
    ).fetchall()
    if not rows:
        return 0
    ids = [row[0] for row in rows]
    for _, channel, state in rows:
        changes.move(channel, state, None)
    marks = ",".join("?" * len(ids))
    jobs = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT job_id FROM deliveries WHERE id IN ({marks})", ids
        )
    ]
    conn.execute(f"DELETE FROM attempts WHERE delivery_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM deliveries WHERE id IN ({marks})", ids)
    # A job goes with its last delivery, and its idempotency key with it.
    job_marks = ",".join("?" * len(jobs))
    conn.execute(
        f"DELETE FROM jobs WHERE id IN ({job_marks}) AND NOT EXISTS"
        " (SELECT 1 FROM deliveries WHERE deliveries.job_id = jobs.id)",
        jobs,
    )
    conn.execute(
        f"DELETE FROM idempotency_keys WHERE job_id IN ({job_marks}) AND NOT EXISTS"
        " (SELECT 1 FROM jobs WHERE jobs.id = idempotency_keys.job_id)",
        jobs,
    )
    return len(ids)


def filters(
    *, channel: str | None, state: str | None, ids: Sequence[int] = ()
) -> tuple[str, list[Any]]:
    """A WHERE clause (or nothing) and its arguments."""
    clauses: list[str] = []
    arguments: list[Any] = []
    if channel is not None:
        clauses.append("channel = ?")
        arguments.append(channel)
    if state is not None:
        clauses.append("state = ?")
        arguments.append(state)
    if ids:
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        arguments.extend(ids)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), arguments
