"""The journal as the API shows it (`GET /api/jobs/{id}`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notifierd.store.base import JobRecord


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def job_as_json(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "channel": job.channel,
        "message": job.message,
        "created_at": iso(job.created_at),
        "deliveries": [
            {
                "id": delivery.id,
                "recipient": delivery.recipient,
                "state": delivery.state,
                "attempts": delivery.attempts,
                "last_error": delivery.last_error,
                "due_at": iso(delivery.due_at),
                "expires_at": iso(delivery.expires_at),
                "updated_at": iso(delivery.updated_at),
                "history": [
                    {
                        "attempt": attempt.attempt,
                        "finished_at": iso(attempt.finished_at),
                        "outcome": attempt.outcome,
                        "duration_ms": round(attempt.duration * 1000, 1),
                        "error": attempt.error,
                    }
                    for attempt in history
                ],
            }
            for delivery, history in job.deliveries
        ],
    }
