"""The contract, DESIGN §2's table: add, claim and complete, and what `add` promises."""

from __future__ import annotations

import asyncio

import pytest

from notifierd.errors import IdempotencyKeyReused
from notifierd.states import OutcomeKind
from notifierd.store import Store
from tests.store_contract.backends import UrlBackend
from tests.store_contract.helpers import (
    LEASE,
    OTHER,
    POLICY,
    T0,
    claim_one,
    job,
    outcome,
    record,
)

# -- add, then claim ----------------------------------------------------------------------------


async def test_an_added_job_is_queued_then_leased(store: Store) -> None:
    job_id = await store.add(job("Привет\nмир", recipients=["r1"], ttl=3600), T0)
    assert isinstance(job_id, int)
    result = await store.claim("c", 10, T0, LEASE)
    [delivery] = result.deliveries
    assert (delivery.channel, delivery.recipient, delivery.message) == ("c", "r1", "Привет\nмир")
    assert (delivery.attempt, delivery.expires_at, delivery.created_at) == (1, T0 + 3600, T0)
    assert delivery.leased_until == T0 + LEASE
    assert result.next_due is None
    rec = await record(store, delivery.id)
    assert (rec.job_id, rec.state, rec.attempts, rec.due_at) == (job_id, "leased", 1, T0)
    assert (await store.claim("c", 10, T0, LEASE)).deliveries == []


async def test_a_job_fans_out_one_delivery_per_recipient(store: Store) -> None:
    job_id = await store.add(job("fan", recipients=["a", "b", "c"]), T0)
    record_of_job = await store.get_job(job_id)
    assert record_of_job is not None
    assert (record_of_job.channel, record_of_job.message) == ("c", "fan")
    assert sorted(d.recipient for d, _ in record_of_job.deliveries) == ["a", "b", "c"]
    claimed = (await store.claim("c", 10, T0, LEASE)).deliveries
    assert sorted(d.recipient for d in claimed) == ["a", "b", "c"]
    assert len({d.lease_token for d in claimed}) == 1  # one claim, one token


async def test_claim_takes_due_unexpired_deliveries_of_its_channel_oldest_due_first(
    store: Store,
) -> None:
    for delay in (30, 10, 20, 0):
        await store.add(job(f"d{delay}", delay=delay), T0)
    await store.add(job("other channel", channel="d"), T0)
    await store.add(job("expires", channel="e", ttl=5), T0)
    assert (await store.claim("e", 10, T0 + 5, LEASE)).deliveries == []
    early = await store.claim("c", 2, T0 + 15, LEASE)
    assert [d.message for d in early.deliveries] == ["d0", "d10"]
    assert early.next_due == T0 + 20
    rest = await store.claim("c", 10, T0 + 100, LEASE)
    assert [d.message for d in rest.deliveries] == ["d20", "d30"]
    assert early.deliveries[0].lease_token != rest.deliveries[0].lease_token


async def test_claim_leaves_out_the_excluded_recipients(store: Store) -> None:
    await store.add(job(recipients=["a", "b", "c"]), T0)
    result = await store.claim("c", 10, T0, LEASE, exclude_recipients={"a", "b"})
    assert [d.recipient for d in result.deliveries] == ["c"]
    assert result.next_due == T0


# -- complete -----------------------------------------------------------------------------------


async def test_delivered_is_final(store: Store) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    done = await store.complete([outcome(delivery, OutcomeKind.DELIVERED)], POLICY, T0 + 1)
    assert done == ["delivered"]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.updated_at) == ("delivered", 1, T0 + 1)
    assert (await store.claim("c", 10, T0 + 10_000, LEASE)).deliveries == []


async def test_a_temporary_failure_with_attempts_left_is_retried_after_the_backoff(
    store: Store,
) -> None:
    await store.add(job(), T0)
    first = await claim_one(store, T0)
    done = await store.complete([outcome(first, OutcomeKind.TEMPORARY, "down")], POLICY, T0 + 1)
    assert done == ["queued"]
    rec = await record(store, first.id)
    assert (rec.state, rec.attempts, rec.due_at, rec.last_error) == ("queued", 1, T0 + 11, "down")
    assert (await store.claim("c", 10, T0 + 10.9, LEASE)).deliveries == []
    second = await claim_one(store, T0 + 11)
    assert (second.attempt, second.id) == (2, first.id)
    await store.complete([outcome(second, OutcomeKind.TEMPORARY, "down")], POLICY, T0 + 12)
    assert (await record(store, first.id)).due_at == T0 + 12 + 20  # backoff 2


async def test_a_retry_after_overrides_the_backoff(store: Store) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    failed = outcome(delivery, OutcomeKind.TEMPORARY, "busy", retry_after=100)
    await store.complete([failed], POLICY, T0)
    assert (await record(store, delivery.id)).due_at == T0 + 100


async def test_a_temporary_failure_with_no_attempt_left_is_dead(store: Store) -> None:
    await store.add(job(), T0)
    now = T0
    for attempt in range(1, POLICY.max_attempts + 1):
        delivery = await claim_one(store, now)
        assert delivery.attempt == attempt
        [state] = await store.complete(
            [outcome(delivery, OutcomeKind.TEMPORARY, f"down {attempt}")], POLICY, now
        )
        now += 100
    assert state == "dead"
    rec = await record(store, delivery.id)
    assert (rec.state, rec.last_error) == ("dead", f"down {POLICY.max_attempts}")


async def test_a_temporary_failure_whose_next_try_is_past_the_ttl_expires(store: Store) -> None:
    await store.add(job(ttl=5), T0)
    delivery = await claim_one(store, T0)
    done = await store.complete([outcome(delivery, OutcomeKind.TEMPORARY, "down")], POLICY, T0)
    assert done == ["expired"]


async def test_a_refusal_fails_the_delivery_with_its_error(store: Store) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    done = await store.complete(
        [outcome(delivery, OutcomeKind.PERMANENT, "no such chat")], POLICY, T0
    )
    assert done == ["failed"]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.last_error) == ("failed", "no such chat")


async def test_a_crashed_worker_requeues_with_the_attempt_counted(store: Store) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    done = await store.complete([outcome(delivery, OutcomeKind.CRASHED, "killed")], POLICY, T0)
    assert done == ["queued"]
    assert (await claim_one(store, T0 + 1000)).attempt == 2


async def test_the_attempts_of_a_job_are_journalled(store: Store) -> None:
    job_id = await store.add(job(), T0)
    first = await claim_one(store, T0)
    await store.complete([outcome(first, OutcomeKind.TEMPORARY, "down")], POLICY, T0 + 1)
    second = await claim_one(store, T0 + 100)
    await store.complete([outcome(second, OutcomeKind.DELIVERED)], POLICY, T0 + 101)
    stored = await store.get_job(job_id)
    assert stored is not None
    [(delivery, attempts)] = stored.deliveries
    assert delivery.state == "delivered"
    assert [(a.attempt, a.outcome, a.error) for a in attempts] == [
        (1, "temporary", "down"),
        (2, "delivered", None),
    ]


# -- what add promises --------------------------------------------------------------------------


async def test_an_added_job_is_durable_once_add_returned(store: Store, backend: UrlBackend) -> None:
    ids = await asyncio.gather(*(store.add(job(f"m{i}"), T0) for i in range(20)))
    assert len(set(ids)) == 20
    # Another Store on the same data (a fresh connection; another host) sees every one.
    async with backend.store(OTHER) as other:
        for index, job_id in enumerate(ids):
            stored = await other.get_job(job_id)
            assert stored is not None and stored.message == f"m{index}"
        assert await other.has_pending("c")


async def test_an_idempotency_key_makes_one_job(store: Store) -> None:
    first = await store.add(job("m", idempotency=("key-1", "digest-a")), T0)
    again = await store.add(job("m", idempotency=("key-1", "digest-a")), T0 + 1)
    other_channel = await store.add(job("m", channel="d", idempotency=("key-1", "digest-a")), T0)
    assert again == first != other_channel
    with pytest.raises(IdempotencyKeyReused) as caught:
        await store.add(job("n", idempotency=("key-1", "digest-b")), T0)
    assert caught.value.job_id == first
    assert len((await store.claim("c", 10, T0, LEASE)).deliveries) == 1
