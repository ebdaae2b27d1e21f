"""The durable queue (SPEC "queue manager"). `Store` is the port (`store.base`); a backend is
picked from a URL by `open_store` (`store.factory`), which imports only the backend it needs."""

from notifierd.store.base import (
    AttemptRecord,
    ChannelStateRecord,
    ClaimResult,
    DeliveryRecord,
    JobRecord,
    JobSummary,
    NewJob,
    NodeRecord,
    RateKeyLease,
    Retried,
    Store,
    StoreCounts,
)
from notifierd.store.factory import open_store

__all__ = [
    "AttemptRecord",
    "ChannelStateRecord",
    "ClaimResult",
    "DeliveryRecord",
    "JobRecord",
    "JobSummary",
    "NewJob",
    "NodeRecord",
    "RateKeyLease",
    "Retried",
    "Store",
    "StoreCounts",
    "open_store",
]
