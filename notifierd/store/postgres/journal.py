"""The journal's reads on PostgreSQL: deliveries and jobs as `notifierctl` and the API show
them. Each is a few short statements (a long read would hold back the vacuum of the queue)."""

from __future__ import annotations

from typing import Any

from notifierd.store.base import AttemptRecord, DeliveryRecord, JobRecord, JobSummary

DELIVERY_COLUMNS = (
    "id, job_id, channel, recipient, state, attempts, due_at, expires_at, created_at,"
    " updated_at, last_error"
)

LIST_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries
 WHERE ($1::text IS NULL OR channel = $1) AND ($2::text IS NULL OR state = $2)
 ORDER BY updated_at DESC, id DESC LIMIT $3
"""

# Newest first by id: the job index walked backwards, not a sort of every delivery.
NEWEST_JOBS = """
SELECT DISTINCT job_id FROM deliveries
 WHERE ($1::text IS NULL OR channel = $1) AND ($2::text IS NULL OR state = $2)
 ORDER BY job_id DESC LIMIT $3
"""

JOB_STATES = """
SELECT d.job_id, j.channel, j.created_at, d.state, count(*) AS n, max(d.updated_at) AS updated_at
  FROM deliveries d JOIN jobs j ON j.id = d.job_id
 WHERE d.job_id = ANY($1::bigint[])
 GROUP BY d.job_id, j.channel, j.created_at, d.state
"""

# The error of the most recently changed delivery of each job that has one.
JOB_ERRORS = """
SELECT DISTINCT ON (job_id) job_id, last_error FROM deliveries
 WHERE job_id = ANY($1::bigint[]) AND last_error IS NOT NULL
 ORDER BY job_id, updated_at DESC, id DESC
"""


def delivery_record(row: Any) -> DeliveryRecord:
    return DeliveryRecord(*row)


async def list_deliveries(
    conn: Any, channel: str | None, state: str | None, limit: int
) -> list[DeliveryRecord]:
    return [
        delivery_record(row) for row in await conn.fetch(LIST_DELIVERIES, channel, state, limit)
    ]


async def list_jobs(
    conn: Any, channel: str | None, state: str | None, limit: int
) -> list[JobSummary]:
    job_ids = [row[0] for row in await conn.fetch(NEWEST_JOBS, channel, state, limit)]
    if not job_ids:
        return []
    jobs: dict[int, dict[str, Any]] = {}
    for row in await conn.fetch(JOB_STATES, job_ids):
        job = jobs.setdefault(
            row["job_id"],
            {"channel": row["channel"], "created_at": row["created_at"], "states": {}, "at": []},
        )
        job["states"][row["state"]] = row["n"]
        job["at"].append(row["updated_at"])
    errors = {row[0]: row[1] for row in await conn.fetch(JOB_ERRORS, job_ids)}
    return [
        JobSummary(
            id=job_id,
            channel=jobs[job_id]["channel"],
            created_at=jobs[job_id]["created_at"],
            updated_at=max(jobs[job_id]["at"]),
            states=jobs[job_id]["states"],
            last_error=errors.get(job_id),
        )
        for job_id in job_ids
        if job_id in jobs
    ]


async def get_job(conn: Any, job_id: int) -> JobRecord | None:
    job = await conn.fetchrow(
        "SELECT id, channel, message, created_at FROM jobs WHERE id = $1", job_id
    )
    if job is None:
        return None
    rows = await conn.fetch(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE job_id = $1 ORDER BY id", job_id
    )
    history: dict[int, list[AttemptRecord]] = {row["id"]: [] for row in rows}
    if rows:
        for attempt in await conn.fetch(
            "SELECT delivery_id, attempt, finished_at, outcome, duration, error FROM attempts"
            " WHERE delivery_id = ANY($1::bigint[]) ORDER BY id",
            list(history),
        ):
            history[attempt[0]].append(AttemptRecord(*attempt[1:]))
    return JobRecord(
        id=job["id"],
        channel=job["channel"],
        message=job["message"],
        created_at=job["created_at"],
        deliveries=[(delivery_record(row), history[row["id"]]) for row in rows],
    )
