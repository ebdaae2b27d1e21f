"""Hosts on one PostgreSQL (DESIGN §9, "Liveness"): heartbeats, the reaper that requeues a dead
host's leases in the statement that removes its row, self-fencing, a clean leave, and recovery
at start-up that never takes a live host's leases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store.base import NewJob
from notifierd.store.postgres.store import PostgresStore

LEASE = 300.0
DEAD_AFTER = 2.0
POLICY = RetryPolicy(delay=10, max_attempts=5, jitter=0)


@asynccontextmanager
async def opened(
    url: str, owner: str, dead_after: float = DEAD_AFTER
) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, pool_size=3, owner=owner, dead_after=dead_after)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 15.0
) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def silence(store: PostgresStore) -> None:
    """Stop the store's heartbeat and reaper, as a SIGSTOP of the host would."""
    task = store._liveness._task
    assert task is not None
    task.cancel()


def wake_up(store: PostgresStore) -> None:
    store._liveness._task = asyncio.get_running_loop().create_task(store._liveness._loop())


async def fill(store: PostgresStore, number: int) -> None:
    for index in range(number):
        await store.add(NewJob("c", f"m{index}", [""], 0, 3600), store.now())


async def test_nodes_register_heartbeat_and_leave(postgres_url: str) -> None:
    admin = await asyncpg.connect(postgres_url)
    try:
        async with opened(postgres_url, "host-a:1:aaaa") as a:
            first = await admin.fetchval(
                "SELECT heartbeat_at FROM nodes WHERE node_id = 'host-a:1:aaaa'"
            )
            assert first is not None

            async def beat_moved() -> bool:
                now = await admin.fetchval(
                    "SELECT heartbeat_at FROM nodes WHERE node_id = 'host-a:1:aaaa'"
                )
                return bool(now > first)

            await eventually(beat_moved, "a heartbeat")
            assert a.fence_deadline() > time.monotonic()
        assert await admin.fetchval("SELECT count(*) FROM nodes") == 0
    finally:
        await admin.close()


async def test_a_silent_host_is_reaped_and_its_leases_requeued_at_once(postgres_url: str) -> None:
    admin = await asyncpg.connect(postgres_url)
    try:
        async with (
            opened(postgres_url, "host-a:1:aaaa") as a,
            opened(postgres_url, "host-b:2:bbbb") as b,
        ):
            await fill(a, 6)
            held = (await a.claim("c", 4, a.now(), LEASE)).deliveries
            assert len(held) == 4
            silence(a)
            silenced = time.monotonic()
            # Each look sees the node row and its leases together, in one snapshot: never
            # the row gone while its deliveries are still leased.
            while True:
                row, leased = await admin.fetchrow(
                    "SELECT (SELECT count(*) FROM nodes WHERE node_id = 'host-a:1:aaaa'),"
                    " (SELECT count(*) FROM deliveries WHERE lease_owner = 'host-a:1:aaaa')"
                )
                assert (row, leased) in ((1, 4), (0, 0)), (row, leased)
                if row == 0:
                    break
                assert time.monotonic() - silenced < DEAD_AFTER + 5, "not reaped in time"
                await asyncio.sleep(0.01)
            assert time.monotonic() - silenced >= DEAD_AFTER - 1
            records = {r.id: r for r in await b.list_deliveries("c", None, 10)}
            for delivery in held:
                assert records[delivery.id].state == "queued"
                assert records[delivery.id].attempts == 1  # the attempt stays counted
                assert "host-a:1:aaaa" in (records[delivery.id].last_error or "")
            # B delivers them; A's late answers are ignored.
            again = (await b.claim("c", 10, b.now(), LEASE)).deliveries
            assert {d.id for d in held} <= {d.id for d in again}
            late = [Outcome(d.id, d.lease_token, OutcomeKind.DELIVERED) for d in held]
            assert await a.complete(late, POLICY, a.now()) == [None] * 4
            wake_up(a)
    finally:
        await admin.close()


async def test_a_stale_host_claims_nothing_then_comes_back_under_a_new_id(
    postgres_url: str,
) -> None:
    async with opened(postgres_url, "host-a:1:aaaa") as a:
        await fill(a, 3)
        silence(a)

        async def fenced() -> bool:
            return not (await a.claim("c", 1, a.now(), LEASE)).deliveries

        # Half of dead_after without a heartbeat: this host stops leasing by itself.
        await eventually(fenced, "self-fencing", seconds=DEAD_AFTER + 2)
        async with opened(postgres_url, "host-b:2:bbbb"):

            async def reaped() -> bool:
                return a.owner != "host-a:1:aaaa" or not await a._run(
                    "read",
                    lambda conn: conn.fetchval(
                        "SELECT count(*) FROM nodes WHERE node_id = 'host-a:1:aaaa'"
                    ),
                )

            await eventually(reaped, "host a reaped by b")
            wake_up(a)

            async def renamed() -> bool:
                return a.owner != "host-a:1:aaaa"

            await eventually(renamed, "host a registering again")
            assert a.owner.startswith(a.owner.split(":")[0] + ":")

            async def leases_again() -> bool:
                return bool((await a.claim("c", 1, a.now(), LEASE)).deliveries)

            await eventually(leases_again, "host a leasing under its new id")


async def test_a_clean_leave_hands_its_leases_over_without_waiting(postgres_url: str) -> None:
    async with opened(postgres_url, "host-b:2:bbbb", dead_after=60) as b:
        async with opened(postgres_url, "host-a:1:aaaa", dead_after=60) as a:
            await fill(a, 2)
            held = (await a.claim("c", 2, a.now(), LEASE)).deliveries
            assert len(held) == 2

        # A left (its row deleted): B's reaper, looking every second, requeues what A held.
        async def requeued() -> bool:
            return {r.state for r in await b.list_deliveries("c", None, 10)} == {"queued"}

        await eventually(requeued, "the leases a left behind", seconds=5)


async def test_recover_at_start_takes_dead_hosts_leases_only(postgres_url: str) -> None:
    async with opened(postgres_url, "host-live:1:aaaa", dead_after=60) as live:
        await fill(live, 4)
        kept = (await live.claim("c", 2, live.now(), LEASE)).deliveries
        # Leases of a host that is gone without a row (killed before the reaper ran).
        await live._run(
            "write",
            lambda conn: conn.execute(
                "UPDATE deliveries SET state = 'leased', lease_owner = 'host-gone:9:9999',"
                " lease_token = 1, attempts = 1 WHERE state = 'queued'"
            ),
        )
        async with opened(postgres_url, "host-new:2:bbbb", dead_after=60) as new:
            assert await new.recover(new.now()) == 2
            records = {r.id: r for r in await new.list_deliveries("c", None, 10)}
            assert {records[d.id].state for d in kept} == {"leased"}
            assert sorted(r.state for r in records.values()) == [
                "leased",
                "leased",
                "queued",
                "queued",
            ]
