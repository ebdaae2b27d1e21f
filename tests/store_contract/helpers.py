"""What the contract's tests share: jobs, outcomes, a claim of exactly one delivery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from notifierd.messages import Delivery, Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import DeliveryRecord, NewJob, Store

OWNER = "node-a:1:0000000a"
OTHER = "node-b:2:0000000b"
#: The tests' time: a whole second near now, every other time an offset from it.
T0 = float(int(time.time()))
LEASE = 60.0
POLICY = RetryPolicy(delay=10, backoff=2, max_delay=1000, max_attempts=3, jitter=0)


def job(
    message: str = "hello",
    channel: str = "c",
    recipients: Sequence[str] = ("",),
    delay: float = 0,
    ttl: float = 3600,
    idempotency: tuple[str, str] | None = None,
) -> NewJob:
    return NewJob(channel, message, recipients, delay, ttl, idempotency)


def outcome(
    delivery: Delivery,
    kind: OutcomeKind,
    error: str | None = None,
    retry_after: float | None = None,
) -> Outcome:
    return Outcome(delivery.id, delivery.lease_token, kind, retry_after, error)


async def claim_one(store: Store, now: float, channel: str = "c") -> Delivery:
    result = await store.claim(channel, 10, now, LEASE)
    assert len(result.deliveries) == 1, result
    return result.deliveries[0]


async def record(store: Store, delivery_id: int) -> DeliveryRecord:
    records = {r.id: r for r in await store.list_deliveries(None, None, 10_000)}
    return records[delivery_id]


async def states(store: Store, channel: str | None = None) -> list[str]:
    return sorted(r.state for r in await store.list_deliveries(channel, None, 10_000))


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
