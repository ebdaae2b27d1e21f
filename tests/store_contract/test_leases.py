"""The contract on leases: fencing by token, lapse, recovery by owner, and claimers that never
lease the same delivery twice."""

from __future__ import annotations

import asyncio
from collections import Counter

from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import Store
from notifierd.store.base import Lapsed
from tests.store_contract.backends import UrlBackend
from tests.store_contract.helpers import (
    LEASE,
    OTHER,
    OWNER,
    POLICY,
    T0,
    claim_one,
    job,
    outcome,
    record,
)


async def test_an_outcome_under_a_stale_token_is_ignored(store: Store) -> None:
    await store.add(job(), T0)
    first = await claim_one(store, T0)
    assert [item.id for item in await store.lapse_leases(T0 + LEASE, {"c": POLICY})] == [first.id]
    second = await claim_one(store, T0 + 1000)
    assert second.lease_token != first.lease_token
    late = await store.complete([outcome(first, OutcomeKind.DELIVERED)], POLICY, T0 + 1001)
    assert late == [None]
    assert (await record(store, first.id)).state == "leased"
    done = await store.complete([outcome(second, OutcomeKind.PERMANENT, "no")], POLICY, T0 + 1002)
    assert done == ["failed"]
    # An answer for a delivery that is no longer leased at all is ignored too.
    again = await store.complete([outcome(second, OutcomeKind.DELIVERED)], POLICY, T0 + 1003)
    assert again == [None]
    assert (await record(store, first.id)).state == "failed"


async def test_a_lapsed_lease_is_handed_out_again_with_the_attempt_counted(store: Store) -> None:
    await store.add(job(), T0)
    delivery = await claim_one(store, T0)
    assert await store.lapse_leases(T0 + LEASE - 1, {"c": POLICY}) == []
    lapsed = await store.lapse_leases(T0 + LEASE, {"c": POLICY})
    assert lapsed == [Lapsed(delivery.id, "c", "queued")]
    rec = await record(store, delivery.id)
    assert (rec.state, rec.attempts, rec.due_at) == ("queued", 1, T0 + LEASE + 10)
    assert rec.last_error is not None
    assert await store.lapse_leases(T0 + 10 * LEASE, {"c": POLICY}) == []
    assert (await claim_one(store, T0 + LEASE + 10)).attempt == 2


async def test_a_lapse_on_the_last_attempt_is_dead(store: Store) -> None:
    await store.add(job(), T0)
    await claim_one(store, T0)
    lapsed = await store.lapse_leases(T0 + LEASE, {"c": RetryPolicy(max_attempts=1)})
    assert [item.state for item in lapsed] == ["dead"]


async def test_recover_takes_back_only_the_named_owners_leases(
    store: Store, backend: UrlBackend
) -> None:
    for name in ("a", "b", "c"):
        await store.add(job(name), T0)
    mine = await store.claim("c", 2, T0, LEASE)
    async with backend.store(OTHER) as other:
        theirs = await claim_one(other, T0)
        assert theirs.id not in {d.id for d in mine.deliveries}

        assert await store.recover(T0 + 1, owner=OTHER) == 1
        assert await store.recover(T0 + 1, owner=OTHER) == 0
        assert await other.recover(T0 + 1, owner="nobody:0:00000000") == 0
        by_id = {r.id: r for r in await store.list_deliveries("c", None, 10)}
        assert by_id[theirs.id].state == "queued"
        assert by_id[theirs.id].attempts == 1  # the attempt stays counted
        assert {by_id[d.id].state for d in mine.deliveries} == {"leased"}

        # The recovered delivery's old lease is dead: its late answer is ignored.
        late = await other.complete([outcome(theirs, OutcomeKind.DELIVERED)], POLICY, T0 + 2)
        assert late == [None]
        again = await claim_one(other, T0 + 3)
        assert (again.id, again.attempt) == (theirs.id, 2)

        assert await other.recover(T0 + 4, owner=OWNER) == 2
        assert {r.state for r in await store.list_deliveries("c", None, 10)} == {"queued", "leased"}


async def test_concurrent_claims_never_lease_a_delivery_twice(store: Store) -> None:
    await asyncio.gather(*(store.add(job(f"m{i}", recipients=["x", "y"]), T0) for i in range(50)))
    results = await asyncio.gather(*(store.claim("c", 7, T0, LEASE) for _ in range(20)))
    leased = Counter(d.id for result in results for d in result.deliveries)
    assert len(leased) == 100
    assert set(leased.values()) == {1}


async def test_claimers_on_two_stores_never_lease_a_delivery_twice(
    store: Store, backend: UrlBackend
) -> None:
    await asyncio.gather(*(store.add(job(f"m{i}"), T0) for i in range(60)))
    async with backend.store(OTHER) as other:
        claims = [(store if turn % 2 else other).claim("c", 5, T0, LEASE) for turn in range(16)]
        results = await asyncio.gather(*claims)
    leased = Counter(d.id for result in results for d in result.deliveries)
    assert len(leased) == 60
    assert set(leased.values()) == {1}
