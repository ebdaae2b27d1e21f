"""The contract on the hosts using a Store (DESIGN §9): each is listed with its heartbeat, its
leases and what it published; a draining host leases nothing but completes what it holds; one
host at a time holds the housekeeping lease. SQLite has one host (the state lock): every
Store of it lists itself alone and leads; a shared backend lists every host and lets one lead."""

from __future__ import annotations

import asyncio
import time

from notifierd.messages import Delivery
from notifierd.states import OutcomeKind
from notifierd.store import NodeRecord, Store
from tests.store_contract.backends import UrlBackend
from tests.store_contract.helpers import LEASE, OTHER, OWNER, POLICY, T0, claim_one, job, outcome

LEAD_SECONDS = 30.0


def by_id(nodes: list[NodeRecord]) -> dict[str, NodeRecord]:
    return {node.node_id: node for node in nodes}


async def test_the_store_lists_itself_among_the_nodes(store: Store) -> None:
    me = by_id(await store.nodes())[OWNER]
    assert 0 <= me.heartbeat_age < 5
    assert abs(me.started_at - store.now()) < 60
    assert (me.draining, me.leases, me.rate_keys, me.runtime) == (False, 0, [], {})


async def test_what_a_node_publishes_is_shown_and_replaced(store: Store) -> None:
    runtime = {"pid": 4321, "channels": {"c": "running", "d": "paused"}, "version": "0.1"}
    await store.publish(runtime)
    assert by_id(await store.nodes())[OWNER].runtime == runtime
    await store.publish({"pid": 4321})
    assert by_id(await store.nodes())[OWNER].runtime == {"pid": 4321}


async def test_leases_are_counted_per_node(store: Store) -> None:
    for index in range(3):
        await store.add(job(f"m{index}"), T0)
    held = (await store.claim("c", 2, T0, LEASE)).deliveries
    assert by_id(await store.nodes())[OWNER].leases == 2
    await store.complete([outcome(held[0], OutcomeKind.DELIVERED)], POLICY, T0 + 1)
    assert by_id(await store.nodes())[OWNER].leases == 1


async def test_the_rate_keys_a_node_holds_are_listed(store: Store, backend: UrlBackend) -> None:
    first = await store.acquire_rate_key("telegram:bbbb", LEASE)
    second = await store.acquire_rate_key("telegram:aaaa", LEASE)
    assert first is not None and second is not None
    assert by_id(await store.nodes())[OWNER].rate_keys == ["telegram:aaaa", "telegram:bbbb"]
    if backend.shared:
        async with backend.store(OTHER) as other:
            assert by_id(await other.nodes())[OWNER].rate_keys == [
                "telegram:aaaa",
                "telegram:bbbb",
            ]
            assert by_id(await other.nodes())[OTHER].rate_keys == []
    await store.release_rate_key("telegram:bbbb", first.epoch, "{}")
    assert by_id(await store.nodes())[OWNER].rate_keys == ["telegram:aaaa"]


async def test_a_draining_node_leases_nothing_and_completes_what_it_holds(
    store: Store, backend: UrlBackend
) -> None:
    for index in range(3):
        await store.add(job(f"m{index}"), T0)
    held = await claim_one_of(store)
    await store.set_draining(True)
    assert by_id(await store.nodes())[OWNER].draining is True
    assert (await store.claim("c", 10, T0 + 1, LEASE)).deliveries == []
    done = await store.complete([outcome(held, OutcomeKind.DELIVERED)], POLICY, T0 + 2)
    assert done == ["delivered"]
    if backend.shared:
        async with backend.store(OTHER) as other:
            # Others see it drain, and go on claiming.
            assert by_id(await other.nodes())[OWNER].draining is True
            assert by_id(await other.nodes())[OTHER].draining is False
            assert len((await other.claim("c", 1, T0 + 3, LEASE)).deliveries) == 1
    await store.set_draining(False)
    assert by_id(await store.nodes())[OWNER].draining is False
    assert len((await store.claim("c", 10, T0 + 4, LEASE)).deliveries) >= 1


async def claim_one_of(store: Store) -> Delivery:
    result = await store.claim("c", 1, T0, LEASE)
    assert len(result.deliveries) == 1
    return result.deliveries[0]


async def test_a_restarted_node_does_not_drain(backend: UrlBackend) -> None:
    async with backend.store(OTHER) as first:
        await first.set_draining(True)
    async with backend.store(OTHER) as again:
        assert by_id(await again.nodes())[OTHER].draining is False
        await again.add(job(), T0)
        await claim_one(again, T0)


async def test_one_store_at_a_time_leads_and_another_takes_over_when_it_closes(
    backend: UrlBackend,
) -> None:
    async with backend.store(OWNER) as first:
        assert await first.lead(LEAD_SECONDS) is True
        assert await first.lead(LEAD_SECONDS) is True  # renewed
        assert by_id(await first.nodes())[OWNER].leader is True
        async with backend.store(OTHER) as second:
            # SQLite: every Store leads (one daemon per database); shared: only the first.
            assert await second.lead(LEAD_SECONDS) is not backend.shared
            assert by_id(await second.nodes())[OTHER].leader is not backend.shared
            assert await first.lead(LEAD_SECONDS) is True
            await first.close()
            # Its lease had 30 s to run: a holder that is gone gives it up at once.
            assert await second.lead(LEAD_SECONDS) is True
            assert by_id(await second.nodes())[OTHER].leader is True


async def test_a_lease_that_ran_out_is_taken_by_another_store(backend: UrlBackend) -> None:
    async with backend.store(OWNER) as first, backend.store(OTHER) as second:
        assert await first.lead(1.0) is True
        taken_at = None
        deadline = time.monotonic() + 10
        while taken_at is None and time.monotonic() < deadline:
            if await second.lead(LEAD_SECONDS):
                taken_at = time.monotonic()
            else:
                await asyncio.sleep(0.05)
        assert taken_at is not None, "the lease was never taken over"
        # The first host is alive: it lost the lease only because it did not renew it.
        assert await first.lead(LEAD_SECONDS) is not backend.shared
