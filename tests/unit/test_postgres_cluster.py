"""Hosts on one PostgreSQL, beyond liveness: the housekeeping lease goes to another host when
its holder is declared dead (long before the lease runs out), a host whose own heartbeat is
stale cannot take it, and a draining host that was declared dead registers again draining."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from notifierd.housekeeping import LEAD_SECONDS, Housekeeping
from notifierd.metrics import Metrics
from notifierd.store.base import NewJob
from notifierd.store.postgres.store import PostgresStore
from tests.unit.test_postgres_nodes import (
    DEAD_AFTER,
    LEASE,
    POLICY,
    eventually,
    fill,
    opened,
    silence,
    wake_up,
)

LONG_LEASE = 600.0


async def test_a_dead_leaders_lease_goes_to_another_host_at_once(postgres_url: str) -> None:
    async with (
        opened(postgres_url, "host-a:1:aaaa") as a,
        opened(postgres_url, "host-b:2:bbbb") as b,
    ):
        assert await a.lead(LONG_LEASE) is True
        assert await b.lead(LONG_LEASE) is False
        silence(a)  # A stops heart-beating, as a SIGSTOP would: B's reaper declares it dead

        async def b_leads() -> bool:
            return await b.lead(LONG_LEASE)

        await eventually(b_leads, "b taking the lease over", seconds=DEAD_AFTER + 5)
        leaders = [node.node_id for node in await b.nodes() if node.leader]
        assert leaders == ["host-b:2:bbbb"]
        wake_up(a)

        async def registered_again() -> bool:
            return a.owner != "host-a:1:aaaa"

        await eventually(registered_again, "a registering under a new id")
        # Back, but B holds a lease with time to run: A does not take it.
        assert await a.lead(LONG_LEASE) is False
        assert await b.lead(LONG_LEASE) is True


async def test_a_host_with_a_stale_heartbeat_cannot_lead(postgres_url: str) -> None:
    async with opened(postgres_url, "host-a:1:aaaa") as a:
        silence(a)

        async def refused() -> bool:
            return not await a.lead(LONG_LEASE)

        # The lease is free, but half of dead_after without a heartbeat fences this host.
        await eventually(refused, "a stale host refused the lease", seconds=DEAD_AFTER + 2)
        wake_up(a)

        async def leads() -> bool:
            return await a.lead(LONG_LEASE)

        await eventually(leads, "a leading once it heart-beats again")


async def test_a_draining_host_declared_dead_comes_back_draining(postgres_url: str) -> None:
    async with (
        opened(postgres_url, "host-a:1:aaaa") as a,
        opened(postgres_url, "host-b:2:bbbb") as b,
    ):
        await fill(a, 2)
        await a.publish({"pid": 1})
        await a.set_draining(True)
        silence(a)

        async def a_reaped() -> bool:
            return "host-a:1:aaaa" not in {node.node_id for node in await b.nodes()}

        await eventually(a_reaped, "a reaped", seconds=DEAD_AFTER + 5)
        wake_up(a)

        async def a_back() -> bool:
            return a.owner != "host-a:1:aaaa" and a.owner in {n.node_id for n in await b.nodes()}

        await eventually(a_back, "a registered again")
        [again] = [node for node in await b.nodes() if node.node_id == a.owner]
        assert (again.draining, again.runtime) == (True, {"pid": 1})
        assert (await a.claim("c", 10, a.now(), LEASE)).deliveries == []


class NoLapses:
    def release(self, name: str, delivery_id: int) -> None:
        raise AssertionError("no lease lapses in this test")


async def test_housekeeping_runs_on_one_host_and_moves_when_it_stops(postgres_url: str) -> None:
    """Two hosts' expiry loops over one queue: only the leader expires, so each delivery is
    counted once; once the leader stops, the other host expires what comes after."""
    a_metrics, b_metrics = Metrics(["c"]), Metrics(["c"])
    async with (
        opened(postgres_url, "host-a:1:aaaa") as a,
        opened(postgres_url, "host-b:2:bbbb") as b,
    ):
        keepers = {
            name: Housekeeping(store, NoLapses(), metrics, {"c": POLICY}, retention=86400)
            for name, store, metrics in (("a", a, a_metrics), ("b", b, b_metrics))
        }
        assert await a.lead(LEAD_SECONDS) is True  # A leads from the start
        tasks = [asyncio.create_task(keeper.expire()) for keeper in keepers.values()]
        try:
            await short_lived(a, 5)

            await eventually(expired_and_counted(a_metrics, 5), "5 expired by a")
            assert expired_count(b_metrics) == 0
            assert keepers["a"].leadership.leading and not keepers["b"].leadership.leading

            tasks[0].cancel()
            await a.close()  # a clean stop: its node row goes, and the lease with it
            await short_lived(b, 3)
            await eventually(expired_and_counted(b_metrics, 3), "3 more expired by b")
            assert keepers["b"].leadership.leading
            assert expired_count(a_metrics) == 5
            assert (await b.counts(b.now()))["c"].expired == 8
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def short_lived(store: PostgresStore, number: int) -> None:
    for index in range(number):
        await store.add(NewJob("c", f"short {index}", [""], 0, 0.2), store.now())


def expired_count(metrics: Metrics) -> int:
    return metrics.channel("c").by_state["expired"]


def expired_and_counted(metrics: Metrics, number: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return expired_count(metrics) == number

    return check
