"""`SqliteStore` (DESIGN §2, §3) on a temporary database. Time is always passed explicitly."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from notifierd.errors import StoreError
from notifierd.messages import Delivery, Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import DeliveryRecord, NewJob
from notifierd.store.base import Lapsed
from notifierd.store.sqlite import SqliteStore
from notifierd.store.sqlite.engine import GroupCommit

T0 = 1_700_000_000.0
LEASE = 60.0
POLICY = RetryPolicy(delay=10, backoff=2, max_delay=1000, max_attempts=3, jitter=0)


def job(
    message: str = "hello",
    channel: str = "c",
    recipients: Sequence[str] = ("",),
    delay: float = 0,
    ttl: float = 3600,
) -> NewJob:
    return NewJob(channel, message, recipients, delay, ttl)


def outcome(
    delivery: Delivery,
    kind: OutcomeKind,
    error: str | None = None,
    retry_after: float | None = None,
) -> Outcome:
    return Outcome(delivery.id, delivery.lease_token, kind, retry_after, error)


async def claim_one(store: SqliteStore, now: float, channel: str = "c") -> Delivery:
    result = await store.claim(channel, 10, now, LEASE)
    assert len(result.deliveries) == 1, result
    return result.deliveries[0]


async def record(store: SqliteStore, delivery_id: int) -> DeliveryRecord:
    records = {r.id: r for r in await store.list_deliveries(None, None, 10_000)}
    return records[delivery_id]


# -- add and claim ------------------------------------------------------------------------------


async def test_add_then_claim(store: SqliteStore) -> None:
    job_id = await store.add(job("Привет\nмир", recipients=["r1"]), T0)
    result = await store.claim("c", 10, T0, LEASE)
    assert result.next_due is None
    [delivery] = result.deliveries
    assert delivery.channel == "c"
    assert delivery.recipient == "r1"
    assert delivery.message == "Привет\nмир"
    assert delivery.attempt == 1
    assert isinstance(delivery.lease_token, int)
    rec = await record(store, delivery.id)
    assert (rec.job_id, rec.state, rec.attempts) == (job_id, "leased", 1)
    assert (rec.created_at, rec.due_at, rec.expires_at) == (T0, T0, T0 + 3600)
    # Nothing is left to claim: the delivery is leased.
    assert (await store.claim("c", 10, T0, LEASE)).deliveries == []


async def test_job_ids_increase(store: SqliteStore) -> None:
    first = await store.add(job(), T0)
    second = await store.add(job(), T0)
    assert second > first


async def test_claim_only_the_channel(store: SqliteStore) -> None:
    await store.add(job("for d", channel="d"), T0)
    assert (await store.claim("c", 10, T0, LEASE)).deliveries == []
    assert (await claim_one(store, T0, "d")).message == "for d"


async def test_delayed_not_claimed_before_due(store: SqliteStore) -> None:
    await store.add(job(delay=30), T0)
    early = await store.claim("c", 10, T0 + 29.9, LEASE)
    assert early.deliveries == []
    assert early.next_due == T0 + 30
    assert (await claim_one(store, T0 + 30)).attempt == 1


async def test_claim_oldest_due_first(store: SqliteStore) -> None:
    for delay in (30, 10, 20, 0):
        await store.add(job(f"d{delay}", delay=delay), T0)
    await store.add(job("later-but-due-earlier", delay=5), T0 - 10)
    result = await store.claim("c", 10, T0 + 100, LEASE)
    assert [d.message for d in result.deliveries] == [
        "later-but-due-earlier",
        "d0",
        "d10",
        "d20",
        "d30",
    ]


async def test_claim_limit(store: SqliteStore) -> None:
    for index in range(5):
        await store.add(job(f"m{index}", delay=index), T0)
    first = await store.claim("c", 2, T0 + 10, LEASE)
    assert [d.message for d in first.deliveries] == ["m0", "m1"]
    assert first.next_due == T0 + 2
    second = await store.claim("c", 10, T0 + 10, LEASE)
    assert [d.message for d in second.deliveries] == ["m2", "m3", "m4"]
    assert second.next_due is None


async def test_one_claim_one_token(store: SqliteStore) -> None:
    for _ in range(3):
        await store.add(job(), T0)
    first = await store.claim("c", 2, T0, LEASE)
    second = await store.claim("c", 2, T0, LEASE)
    assert len({d.lease_token for d in first.deliveries}) == 1
    assert first.deliveries[0].lease_token != second.deliveries[0].lease_token


async def test_exclude_recipients(store: SqliteStore) -> None:
    await store.add(job(recipients=["a", "b", "c"]), T0)
    result = await store.claim("c", 10, T0, LEASE, exclude_recipients={"a", "b"})
    assert [d.recipient for d in result.deliveries] == ["c"]
    assert result.next_due == T0
    rest = await store.claim("c", 10, T0, LEASE, exclude_recipients=["c"])
    assert sorted(d.recipient for d in rest.deliveries) == ["a", "b"]


async def test_fan_out(store: SqliteStore) -> None:
    job_id = await store.add(job("fan", recipients=["a", "b", "c"]), T0)
    records = await store.list_deliveries("c", None, 10)
    assert sorted(r.recipient for r in records) == ["a", "b", "c"]
    assert {r.job_id for r in records} == {job_id}
    assert len({r.id for r in records}) == 3
    result = await store.claim("c", 10, T0, LEASE)
    assert sorted((d.recipient, d.message) for d in result.deliveries) == [
        ("a", "fan"),
        ("b", "fan"),
        ("c", "fan"),
    ]
    # Delivered to one recipient, retried for another: each delivery has its own fate.
    by_recipient = {d.recipient: d for d in result.deliveries}
    states = await store.complete(
        [
            outcome(by_recipient["a"], OutcomeKind.DELIVERED),
            outcome(by_recipient["b"], OutcomeKind.TEMPORARY, "down"),
            outcome(by_recipient["c"], OutcomeKind.PERMANENT, "refused"),
        ],
        POLICY,
        T0,
    )
    assert states == ["delivered", "queued", "failed"]
    again = await store.claim("c", 10, T0 + 100, LEASE)
    assert [(d.recipient, d.attempt) for d in again.deliveries] == [("b", 2)]


async def test_expired_rows_are_not_claimed(store: SqliteStore) -> None:
    await store.add(job(ttl=10), T0)
    assert (await store.claim("c", 10, T0 + 10, LEASE)).deliveries == []
    assert (await store.claim("c", 10, T0 + 9.9, LEASE)).deliveries != []


# -- complete -----------------------------------------------------------------------------------


async def test_complete_delivered(store: SqliteStore) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    assert await store.complete([outcome(delivery, OutcomeKind.DELIVERED)], POLICY, T0 + 1) == [
        "delivered"
    ]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.updated_at) == ("delivered", 1, T0 + 1)
    assert (await store.claim("c", 10, T0 + 10_000, LEASE)).deliveries == []


async def test_complete_temporary_requeues_with_backoff(store: SqliteStore) -> None:
    await store.add(job(), T0)
    first = await claim_one(store, T0)
    states = await store.complete([outcome(first, OutcomeKind.TEMPORARY, "down")], POLICY, T0 + 1)
    assert states == ["queued"]
    rec = await record(store, first.id)
    assert (rec.state, rec.attempts, rec.due_at, rec.last_error) == ("queued", 1, T0 + 11, "down")
    assert (await store.claim("c", 10, T0 + 10.9, LEASE)).deliveries == []
    second = await claim_one(store, T0 + 11)
    assert second.attempt == 2
    assert second.lease_token != first.lease_token
    await store.complete([outcome(second, OutcomeKind.TEMPORARY, "down")], POLICY, T0 + 12)
    assert (await record(store, first.id)).due_at == T0 + 12 + 20  # backoff 2


async def test_complete_temporary_jitter_stays_in_bounds(store: SqliteStore) -> None:
    policy = RetryPolicy(delay=100, max_attempts=5, jitter=0.5)
    for _ in range(20):
        await store.add(job(), T0)
    claimed = (await store.claim("c", 100, T0, LEASE)).deliveries
    await store.complete([outcome(d, OutcomeKind.TEMPORARY) for d in claimed], policy, T0)
    dues = [r.due_at - T0 for r in await store.list_deliveries("c", "queued", 100)]
    assert len(dues) == 20
    assert all(50 <= due <= 150 for due in dues)
    assert len(set(dues)) > 1  # jitter spreads them


async def test_complete_permanent_fails_and_keeps_error(store: SqliteStore) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    states = await store.complete(
        [outcome(delivery, OutcomeKind.PERMANENT, "chat not found")], POLICY, T0
    )
    assert states == ["failed"]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.last_error) == ("failed", "chat not found")


async def test_complete_retry_after(store: SqliteStore) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    states = await store.complete(
        [outcome(delivery, OutcomeKind.TEMPORARY, "429", retry_after=42.5)], POLICY, T0
    )
    assert states == ["queued"]
    assert (await record(store, delivery.id)).due_at == T0 + 42.5


async def test_rate_limits_are_not_attempts(store: SqliteStore) -> None:
    """Three 429s in a row with max_attempts 3, then success: delivered, one attempt counted,
    every request journalled."""
    job_id = await store.add(job(), T0)
    now = T0
    for _ in range(POLICY.max_attempts):
        delivery = await claim_one(store, now)
        assert delivery.attempt == 1
        limited = outcome(delivery, OutcomeKind.RATE_LIMITED, "429 slow down", retry_after=2)
        assert await store.complete([limited], POLICY, now) == ["queued"]
        rec = await record(store, delivery.id)
        assert (rec.attempts, rec.due_at, rec.last_error) == (0, now + 2, "429 slow down")
        now += 2
    delivery = await claim_one(store, now)
    assert await store.complete([outcome(delivery, OutcomeKind.DELIVERED)], POLICY, now) == [
        "delivered"
    ]
    assert (await record(store, delivery.id)).attempts == 1
    stored = await store.get_job(job_id)
    assert stored is not None
    [(_, history)] = stored.deliveries
    assert [(a.attempt, a.outcome) for a in history] == [(1, "rate_limited")] * 3 + [
        (1, "delivered")
    ]


async def test_rate_limits_forever_end_expired(store: SqliteStore) -> None:
    await store.add(job(ttl=10), T0)
    now = T0
    states: list[str | None] = []
    while not states or states[-1] == "queued":
        delivery = await claim_one(store, now)
        limited = outcome(delivery, OutcomeKind.RATE_LIMITED, "429", retry_after=3)
        states = await store.complete([limited], POLICY, now)
        now += 3
    assert states == ["expired"]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts) == ("expired", 0)


async def test_complete_misconfigured_gives_attempt_back(store: SqliteStore) -> None:
    await store.add(job(delay=5), T0)
    delivery = await claim_one(store, T0 + 5)
    states = await store.complete(
        [outcome(delivery, OutcomeKind.MISCONFIGURED, "bad token")], POLICY, T0 + 7
    )
    assert states == ["queued"]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.due_at, rec.last_error) == (
        "queued",
        0,
        T0 + 7,
        "bad token",
    )
    # Never charged: far more misconfigured rounds than max_attempts do not kill it.
    for round_ in range(POLICY.max_attempts * 3):
        now = T0 + 10 + round_
        again = await claim_one(store, now)
        assert again.attempt == 1
        await store.complete([outcome(again, OutcomeKind.MISCONFIGURED, "bad")], POLICY, now)
    assert (await record(store, delivery.id)).state == "queued"


async def test_complete_unstarted_gives_attempt_back_keeps_due(store: SqliteStore) -> None:
    await store.add(job(delay=5), T0)
    delivery = await claim_one(store, T0 + 50)
    states = await store.complete([outcome(delivery, OutcomeKind.UNSTARTED)], POLICY, T0 + 60)
    assert states == ["queued"]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.due_at, rec.last_error) == ("queued", 0, T0 + 5, None)
    assert (await claim_one(store, T0 + 60)).attempt == 1


async def test_complete_crashed_counts_the_attempt(store: SqliteStore) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    states = await store.complete(
        [outcome(delivery, OutcomeKind.CRASHED, "worker died")], POLICY, T0
    )
    assert states == ["queued"]
    rec = await record(store, delivery.id)
    assert (rec.attempts, rec.due_at, rec.last_error) == (1, T0 + 10, "worker died")


async def test_poison_message_ends_dead(store: SqliteStore) -> None:
    await store.add(job(), T0)
    now = T0
    for attempt in range(1, POLICY.max_attempts + 1):
        now += 10_000 if attempt > 1 else 0
        delivery = await claim_one(store, min(now, T0 + 3000))
        assert delivery.attempt == attempt
        [state] = await store.complete(
            [outcome(delivery, OutcomeKind.CRASHED, "boom")], POLICY, T0 + attempt
        )
        now = T0 + attempt
    assert state == "dead"
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.last_error) == ("dead", POLICY.max_attempts, "boom")


async def test_attempts_used_up_is_dead(store: SqliteStore) -> None:
    policy = RetryPolicy(delay=1, max_attempts=2, jitter=0)
    await store.add(job(), T0)
    first = await claim_one(store, T0)
    assert await store.complete([outcome(first, OutcomeKind.TEMPORARY)], policy, T0) == ["queued"]
    second = await claim_one(store, T0 + 1)
    assert await store.complete([outcome(second, OutcomeKind.TEMPORARY, "x")], policy, T0 + 1) == [
        "dead"
    ]
    assert (await store.claim("c", 10, T0 + 100, LEASE)).deliveries == []


async def test_next_try_after_expiry_is_expired(store: SqliteStore) -> None:
    await store.add(job(ttl=15), T0)
    delivery = await claim_one(store, T0)
    states = await store.complete(
        [outcome(delivery, OutcomeKind.TEMPORARY, "down")], POLICY, T0 + 5
    )  # next try at T0 + 15 = expires_at
    assert states == ["expired"]
    assert (await record(store, delivery.id)).last_error == "down"


async def test_stale_lease_token_ignored(store: SqliteStore) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    stale = Outcome(delivery.id, delivery.lease_token + 1, OutcomeKind.DELIVERED)
    assert await store.complete([stale], POLICY, T0) == [None]
    assert (await record(store, delivery.id)).state == "leased"
    unknown = Outcome(delivery.id + 1000, delivery.lease_token, OutcomeKind.DELIVERED)
    assert await store.complete([unknown], POLICY, T0) == [None]
    # A second answer for a delivery already completed is ignored too.
    assert await store.complete([outcome(delivery, OutcomeKind.DELIVERED)], POLICY, T0) == [
        "delivered"
    ]
    late = outcome(delivery, OutcomeKind.PERMANENT, "late")
    assert await store.complete([late], POLICY, T0) == [None]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.last_error) == ("delivered", None)


async def test_complete_many_in_one_call(store: SqliteStore) -> None:
    for _ in range(3):
        await store.add(job(), T0)
    a, b, c = (await store.claim("c", 10, T0, LEASE)).deliveries
    stale = Outcome(c.id, c.lease_token + 1, OutcomeKind.DELIVERED)
    states = await store.complete(
        [outcome(a, OutcomeKind.DELIVERED), stale, outcome(b, OutcomeKind.PERMANENT)], POLICY, T0
    )
    assert states == ["delivered", None, "failed"]


# -- expiry, lapsed leases, recovery ------------------------------------------------------------


async def test_expire(store: SqliteStore) -> None:
    await store.add(job("short", ttl=10), T0)
    await store.add(job("long", ttl=100), T0)
    await store.add(job("leased", ttl=10), T0 - 1)
    leased = await claim_one(store, T0 - 1)
    assert await store.expire(T0 + 9) == {}
    assert await store.expire(T0 + 10) == {"c": 1}
    records = {r.id: r for r in await store.list_deliveries(None, None, 10)}
    by_message = {r.id: r.state for r in records.values()}
    assert sorted(by_message.values()) == ["expired", "leased", "queued"]
    expired = next(r for r in records.values() if r.state == "expired")
    assert expired.last_error is not None
    assert expired.updated_at == T0 + 10
    assert records[leased.id].state == "leased"  # a leased one waits for its outcome
    assert await store.expire(T0 + 10) == {}


async def test_expire_keeps_the_last_error(store: SqliteStore) -> None:
    await store.add(job(ttl=100), T0)
    delivery = await claim_one(store, T0)
    await store.complete([outcome(delivery, OutcomeKind.TEMPORARY, "down")], POLICY, T0)
    assert await store.expire(T0 + 100) == {"c": 1}
    rec = await record(store, delivery.id)
    assert (rec.state, rec.last_error) == ("expired", "down")


async def test_lapse_leases(store: SqliteStore) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)  # leased until T0 + LEASE
    policies = {"c": POLICY}
    assert await store.lapse_leases(T0 + LEASE - 1, policies) == []
    lapsed = await store.lapse_leases(T0 + LEASE, policies)
    assert lapsed == [Lapsed(delivery.id, "c", "queued")]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.due_at) == ("queued", 1, T0 + LEASE + 10)
    assert rec.last_error is not None
    # The hung worker's late answer is ignored.
    assert await store.complete([outcome(delivery, OutcomeKind.DELIVERED)], POLICY, T0) == [None]
    assert await store.lapse_leases(T0 + 10 * LEASE, policies) == []
    again = await claim_one(store, T0 + LEASE + 10)
    assert again.attempt == 2


async def test_lapse_leases_last_attempt_is_dead(store: SqliteStore) -> None:
    await store.add(job(), T0)
    await claim_one(store, T0)
    lapsed = await store.lapse_leases(T0 + LEASE, {"c": RetryPolicy(max_attempts=1)})
    assert [item.state for item in lapsed] == ["dead"]


async def test_recover(store: SqliteStore) -> None:
    for _ in range(3):
        await store.add(job(), T0)
    await store.add(job(delay=100), T0)
    claimed = (await store.claim("c", 2, T0, LEASE)).deliveries
    assert await store.recover(T0 + 1) == 2
    assert await store.recover(T0 + 1) == 0
    records = await store.list_deliveries("c", None, 10)
    assert all(r.state == "queued" for r in records)
    # The attempt stays counted; the old leases are dead.
    assert sorted(r.attempts for r in records) == [0, 0, 1, 1]
    assert await store.complete([outcome(claimed[0], OutcomeKind.DELIVERED)], POLICY, T0) == [None]
    again = (await store.claim("c", 10, T0 + 1, LEASE)).deliveries
    assert sorted(d.attempt for d in again) == [1, 2, 2]


# -- requeue ------------------------------------------------------------------------------------


async def _terminal_set(store: SqliteStore) -> dict[str, int]:
    """One delivery in each state on channel c, and a dead one on channel d; ids by label."""
    one_try = RetryPolicy(max_attempts=1)
    labels = ["delivered", "failed", "dead", "expired", "queued", "leased"]
    for label in labels:
        await store.add(job(label, ttl=5 if label == "expired" else 3600), T0)
    await store.add(job("dead-d", channel="d"), T0)
    claimed = {d.message: d for d in (await store.claim("c", 10, T0, LEASE)).deliveries}
    [dead_d] = (await store.claim("d", 10, T0, LEASE)).deliveries
    await store.complete(
        [
            outcome(claimed["delivered"], OutcomeKind.DELIVERED),
            outcome(claimed["failed"], OutcomeKind.PERMANENT, "refused"),
            outcome(claimed["expired"], OutcomeKind.TEMPORARY, "down"),
            outcome(claimed["queued"], OutcomeKind.UNSTARTED),
        ],
        POLICY,
        T0,
    )
    await store.complete([outcome(claimed["dead"], OutcomeKind.TEMPORARY)], one_try, T0)
    await store.complete([outcome(dead_d, OutcomeKind.TEMPORARY)], one_try, T0)
    states = {r.id: r.state for r in await store.list_deliveries(None, None, 100)}
    ids = {label: claimed[label].id for label in labels}
    ids["dead-d"] = dead_d.id
    assert {label: states[i] for label, i in ids.items()} == {
        "delivered": "delivered",
        "failed": "failed",
        "dead": "dead",
        "expired": "expired",
        "queued": "queued",
        "leased": "leased",
        "dead-d": "dead",
    }
    return ids


async def test_requeue_by_ids(store: SqliteStore) -> None:
    ids = await _terminal_set(store)
    count = await store.requeue(
        T0 + 50, ids=[ids["dead"], ids["delivered"], ids["queued"], ids["leased"]]
    )
    assert count == 1  # only the dead one is retryable
    rec = await record(store, ids["dead"])
    assert (rec.state, rec.attempts, rec.due_at) == ("queued", 0, T0 + 50)
    assert rec.expires_at == T0 + 50 + 86400
    assert (await record(store, ids["delivered"])).state == "delivered"
    assert (await record(store, ids["leased"])).state == "leased"
    claimed = (await store.claim("c", 10, T0 + 50, LEASE)).deliveries
    assert sorted((d.message, d.attempt) for d in claimed) == [("dead", 1), ("queued", 1)]


async def test_requeue_by_channel_and_state(store: SqliteStore) -> None:
    ids = await _terminal_set(store)
    count = await store.requeue(T0 + 50, channel="c", state="dead", ttl_for={"c": 100.0})
    assert count == 1
    rec = await record(store, ids["dead"])
    assert (rec.state, rec.attempts, rec.expires_at) == ("queued", 0, T0 + 150)
    assert (await record(store, ids["dead-d"])).state == "dead"
    assert (await record(store, ids["failed"])).state == "failed"


async def test_requeue_channel_all_retryable_states(store: SqliteStore) -> None:
    ids = await _terminal_set(store)
    assert await store.requeue(T0 + 50, channel="c") == 3
    for label in ("failed", "dead", "expired"):
        assert (await record(store, ids[label])).state == "queued", label
    assert (await record(store, ids["delivered"])).state == "delivered"
    assert (await record(store, ids["dead-d"])).state == "dead"


async def test_requeue_delivered_state_is_nothing(store: SqliteStore) -> None:
    await _terminal_set(store)
    assert await store.requeue(T0 + 50, state="delivered") == 0


# -- flags, counts, listings --------------------------------------------------------------------


async def test_flags(store: SqliteStore) -> None:
    assert await store.get_flags() == {}
    await store.set_flag("paused", "1")
    await store.set_flag("stopped:c", "1")
    await store.set_flag("paused", "2")
    assert await store.get_flags() == {"paused": "2", "stopped:c": "1"}
    await store.set_flag("paused", None)
    await store.set_flag("never-set", None)
    assert await store.get_flags() == {"stopped:c": "1"}


async def test_counts(store: SqliteStore) -> None:
    assert await store.counts(T0) == {}
    await store.add(job("due", recipients=["a", "b"]), T0 - 5)
    await store.add(job("due-later", delay=100), T0)
    await store.add(job("leased"), T0 - 10)
    await store.add(job("other", channel="d"), T0)
    leased = await store.claim("c", 1, T0, LEASE)
    assert [d.message for d in leased.deliveries] == ["leased"]
    counts = await store.counts(T0)
    c = counts["c"]
    assert (c.queued, c.delayed, c.in_flight) == (2, 1, 1)
    assert (c.delivered, c.failed, c.dead, c.expired) == (0, 0, 0, 0)
    assert counts["d"].queued == 1
    await store.complete([outcome(leased.deliveries[0], OutcomeKind.DELIVERED)], POLICY, T0)
    c = (await store.counts(T0 + 200))["c"]
    assert (c.queued, c.delayed, c.in_flight, c.delivered) == (3, 0, 0, 1)


async def test_counts_terminal(store: SqliteStore) -> None:
    await _terminal_set(store)
    counts = await store.counts(T0)
    c = counts["c"]
    assert (c.delivered, c.failed, c.dead, c.expired, c.queued, c.in_flight) == (1, 1, 1, 1, 1, 1)
    assert counts["d"].dead == 1


async def test_list_deliveries_filters(store: SqliteStore) -> None:
    ids = await _terminal_set(store)
    everything = await store.list_deliveries(None, None, 100)
    assert len(everything) == 7
    assert [r.id for r in await store.list_deliveries("d", None, 100)] == [ids["dead-d"]]
    dead = await store.list_deliveries(None, "dead", 100)
    assert sorted(r.id for r in dead) == sorted([ids["dead"], ids["dead-d"]])
    assert [r.id for r in await store.list_deliveries("c", "dead", 100)] == [ids["dead"]]
    assert len(await store.list_deliveries(None, None, 2)) == 2
    assert await store.list_deliveries("nope", None, 100) == []


async def test_list_deliveries_newest_change_first(store: SqliteStore) -> None:
    for index in range(3):
        await store.add(job(f"m{index}"), T0 + index)
    records = await store.list_deliveries(None, None, 10)
    assert [r.updated_at for r in records] == [T0 + 2, T0 + 1, T0]
    first = min(records, key=lambda r: r.id)
    # Touch the oldest one: it moves to the front.
    [delivery] = (await store.claim("c", 1, T0 + 10, LEASE)).deliveries
    assert delivery.id == first.id
    assert (await store.list_deliveries(None, None, 1))[0].id == first.id


# -- durability and the writer ------------------------------------------------------------------


async def test_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db" / "notifierd.db"
    first = SqliteStore(path)
    await first.open()
    await first.add(job("survives", recipients=["a", "b"], delay=3), T0)
    await first.set_flag("paused", "1")
    await first.close()
    second = SqliteStore(path)
    await second.open()
    try:
        assert await second.get_flags() == {"paused": "1"}
        result = await second.claim("c", 10, T0 + 3, LEASE)
        assert sorted((d.recipient, d.message) for d in result.deliveries) == [
            ("a", "survives"),
            ("b", "survives"),
        ]
    finally:
        await second.close()


async def test_leases_survive_reopen_and_recover(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    first = SqliteStore(path)
    await first.open()
    await first.add(job(), T0)
    await first.claim("c", 10, T0, LEASE)
    await first.close()  # as if killed while a worker held the delivery
    second = SqliteStore(path)
    await second.open()
    try:
        assert await second.recover(T0 + 1) == 1
        assert (await claim_one(second, T0 + 1)).attempt == 2
    finally:
        await second.close()


class BatchCounter:
    """Records how many writes each transaction carried (one `_settle` per transaction)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        original = GroupCommit._settle

        def counting(
            engine: GroupCommit,
            futures: list[asyncio.Future[Any]],
            results: list[tuple[bool, Any]] | None,
            error: Exception | None,
        ) -> None:
            self.sizes.append(len(futures))
            original(engine, futures, results, error)

        monkeypatch.setattr(GroupCommit, "_settle", counting)


async def test_group_commit(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = BatchCounter(monkeypatch)
    job_ids = await asyncio.gather(*(store.add(job(f"m{i}"), T0) for i in range(200)))
    assert len(set(job_ids)) == 200
    assert sum(counter.sizes) == 200
    assert len(counter.sizes) <= 5, counter.sizes
    # Committed: another connection sees every row.
    with sqlite3.connect(tmp_path / "state" / "notifierd.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 200
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 200


async def test_group_commit_mixed_operations(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.add(job(), T0)
    counter = BatchCounter(monkeypatch)
    claimed, job_id, _ = await asyncio.gather(
        store.claim("c", 10, T0, LEASE), store.add(job(), T0), store.set_flag("x", "1")
    )
    # The jobs of a transaction are inserted first, so the claim sharing it sees the new one.
    assert len(claimed.deliveries) == 2
    assert job_id == 2
    assert counter.sizes == [3]


async def test_failing_operation_does_not_fail_the_batch(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_done_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO flags (name, value) VALUES ('half', 'done')")
        raise ValueError("custom operation failed")

    def bad_sql(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    async def run(operation: Any) -> Any:
        return await store._write(operation)

    counter = BatchCounter(monkeypatch)
    results = await asyncio.gather(
        store.add(job("before"), T0),
        run(half_done_then_fail),
        store.add(job("between"), T0),
        run(bad_sql),
        store.set_flag("after", "1"),
        return_exceptions=True,
    )
    assert counter.sizes == [5]
    assert isinstance(results[0], int)
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], int)
    assert isinstance(results[3], StoreError)
    assert "no_such_table" in str(results[3])
    assert results[4] is None
    # The failed operation's own write was undone; the others committed.
    assert await store.get_flags() == {"after": "1"}
    messages = sorted(d.message for d in (await store.claim("c", 10, T0, LEASE)).deliveries)
    assert messages == ["before", "between"]


async def test_writes_after_a_batch_are_batched_again(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = BatchCounter(monkeypatch)
    await store.add(job(), T0)
    await store.add(job(), T0)
    await asyncio.gather(*(store.add(job(), T0) for _ in range(10)))
    assert counter.sizes[:2] == [1, 1]
    assert sum(counter.sizes) == 12
    assert len(counter.sizes) <= 4


async def test_write_after_close_raises(tmp_path: Path) -> None:
    closed = SqliteStore(tmp_path / "closed.db")
    await closed.open()
    await closed.close()
    with pytest.raises(StoreError):
        await asyncio.wait_for(closed.add(job(), T0), 1.0)


async def test_read_after_close_raises(tmp_path: Path) -> None:
    closed = SqliteStore(tmp_path / "closed.db")
    await closed.open()
    await closed.close()
    with pytest.raises(StoreError):
        await closed.counts(T0)


async def test_open_failure_is_store_error(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    broken = SqliteStore(directory)
    with pytest.raises(StoreError):
        await broken.open()
    await broken.close()


async def test_writer_pragmas(store: SqliteStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[Any, ...]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )

    assert await store._write(pragmas) == ("wal", 2)


async def test_claim_uses_the_due_index(store: SqliteStore) -> None:
    for index in range(50):
        await store.add(job(channel=f"ch{index % 5}", delay=index), T0)
    statements: list[str] = []

    def trace(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(statements.append)

    def untrace(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(None)

    await store._write(trace)
    await store.claim("ch1", 3, T0 + 100, LEASE, exclude_recipients=["x"])
    await store._write(untrace)
    [update] = [s for s in statements if s.lstrip().upper().startswith("UPDATE DELIVERIES")]
    subquery = update[update.index("(SELECT") + 1 : update.rindex(")")]
    assert subquery.startswith("SELECT id FROM deliveries")

    def plan(conn: sqlite3.Connection) -> str:
        rows = conn.execute("EXPLAIN QUERY PLAN " + subquery).fetchall()
        return "\n".join(str(row[-1]) for row in rows)

    detail = await store._write(plan)
    assert "deliveries_due" in detail, detail
    assert "TEMP B-TREE" not in detail.upper(), detail  # ORDER BY served by the index
