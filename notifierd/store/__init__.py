"""The durable queue (SPEC "queue manager"). `Store` is the interface; `SqliteStore` the
default backend."""

from notifierd.store.base import (
    ClaimResult,
    DeliveryRecord,
    NewJob,
    Store,
    StoreCounts,
)
from notifierd.store.sqlite import SqliteStore

__all__ = ["ClaimResult", "DeliveryRecord", "NewJob", "SqliteStore", "Store", "StoreCounts"]
