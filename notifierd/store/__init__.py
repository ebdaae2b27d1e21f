"""The durable queue (SPEC "queue manager"). `Store` is the interface; `SqliteStore` the
default backend."""

from notifierd.store.base import (
    AttemptRecord,
    ClaimResult,
    DeliveryRecord,
    JobRecord,
    JobSummary,
    NewJob,
    Retried,
    Store,
    StoreCounts,
)
from notifierd.store.sqlite.store import SqliteStore

__all__ = [
    "AttemptRecord",
    "ClaimResult",
    "DeliveryRecord",
    "JobRecord",
    "JobSummary",
    "NewJob",
    "Retried",
    "SqliteStore",
    "Store",
    "StoreCounts",
]
