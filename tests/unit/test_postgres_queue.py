"""The PostgreSQL Store as a queue shared by several hosts: claims that skip each other's rows,
group-committed intake, wake-ups across hosts, plans that stay custom, and counts kept by the
tally rather than counted."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from notifierd import maintenance
from notifierd.errors import IdempotencyKeyReused, StoreError
from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store.base import NewJob, StoreCounts
from notifierd.store.postgres import claims, intake, wakeups
from notifierd.store.postgres.store import PostgresStore

LEASE = 60.0
POLICY = RetryPolicy(delay=10, backoff=1, max_delay=10, max_attempts=2, jitter=0)


def job(message: str = "m", channel: str = "c", **fields: Any) -> NewJob:
    values: dict[str, Any] = {"recipients": [""], "delay": 0, "ttl": 3600, **fields}
    return NewJob(
        channel,
        message,
        values["recipients"],
        values["delay"],
        values["ttl"],
        values.get("idempotency"),
    )


@asynccontextmanager
async def opened(
    url: str, pool_size: int = 4, owner: str | None = None
) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, pool_size=pool_size, owner=owner)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_claims_split_a_backlog_between_hosts(postgres_url: str) -> None:
    async with opened(postgres_url) as a, opened(postgres_url) as b:
        await asyncio.gather(*(a.add(job(f"m{i}"), a.now()) for i in range(200)))

        async def drain(store: PostgresStore) -> list[int]:
            taken: list[int] = []
            while result := (await store.claim("c", 5, store.now(), LEASE)).deliveries:
                taken.extend(d.id for d in result)
                await asyncio.sleep(0)
            return taken

        runs = await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
        every = [delivery_id for run in runs for delivery_id in run]
        # Four claimers on two hosts: every delivery leased exactly once, to one of them.
        assert len(every) == 200 and len(set(every)) == 200
        records = await a.list_deliveries("c", None, 1000)
        assert {(r.state, r.attempts) for r in records} == {("leased", 1)}
        owners = await a._run(
            "read", lambda conn: conn.fetch("SELECT DISTINCT lease_owner FROM deliveries")
        )
        assert {row[0] for row in owners} == {a.owner, b.owner}


async def test_a_locked_row_is_skipped_not_waited_for(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        now = store.now()
        for index in range(3):
            await store.add(job(f"m{index}"), now)
        holder = await asyncpg.connect(postgres_url)
        try:
            transaction = holder.transaction()
            await transaction.start()
            oldest = await holder.fetchval(
                "SELECT id FROM deliveries ORDER BY id LIMIT 1 FOR UPDATE"
            )
            started = time.monotonic()
            result = await store.claim("c", 10, now, LEASE)
            assert time.monotonic() - started < 2.0  # lock_timeout is 10 s: it did not wait
            assert sorted(d.message for d in result.deliveries) == ["m1", "m2"]
            # The skipped one is still queued, so it is what is due next.
            assert result.next_due == now
            await transaction.rollback()
        finally:
            await holder.close()
        [last] = (await store.claim("c", 10, now, LEASE)).deliveries
        assert last.id == oldest and last.message == "m0"


async def test_a_lease_records_its_owner(postgres_url: str) -> None:
    async with opened(postgres_url, owner="host-a:1:abcd") as store:
        await store.add(job(), store.now())
        [delivery] = (await store.claim("c", 1, store.now(), LEASE)).deliveries
        owner = await store._run(
            "read",
            lambda conn: conn.fetchval(
                "SELECT lease_owner FROM deliveries WHERE id = $1", delivery.id
            ),
        )
        assert owner == "host-a:1:abcd"
        done = Outcome(delivery.id, delivery.lease_token, OutcomeKind.DELIVERED)
        assert await store.complete([done], POLICY, store.now()) == ["delivered"]
        # A late answer under the same token changes nothing.
        assert await store.complete([done], POLICY, store.now()) == [None]


async def test_claims_never_use_a_generic_plan(postgres_url: str) -> None:
    """asyncpg prepares the claim; PostgreSQL would switch to a generic plan after five runs,
    costed for the queue as it was then (empty). The Store's sessions forbid it."""
    async with opened(postgres_url, pool_size=1) as store:
        for _ in range(10):
            await store.claim("c", 10, store.now(), LEASE)
        plans = await store._run(
            "read",
            lambda conn: conn.fetchrow(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement = $1",
                claims.CLAIM,
            ),
        )
        assert (plans["generic_plans"], plans["custom_plans"]) == (0, 10)
    # The trap is real: a session as asyncpg sets it up by default falls into it.
    plain = await asyncpg.connect(postgres_url)
    try:
        arguments: tuple[Any, ...] = (
            *("c", time.time(), [], 10, "x", 1, time.time() + 60, 5.0),
            *(claims.PAUSED_FLAG, claims.STOPPED_FLAG),
        )
        for _ in range(10):
            await plain.fetch(claims.CLAIM, *arguments)
        generic = await plain.fetchval(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1", claims.CLAIM
        )
        assert generic > 0
    finally:
        await plain.close()


async def test_the_jobs_of_a_loop_turn_share_one_statement(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    original = intake.Intake._insert_batch

    async def counted(self: intake.Intake, jobs: list[tuple[NewJob, float]]) -> Any:
        sizes.append(len(jobs))
        return await original(self, jobs)

    monkeypatch.setattr(intake.Intake, "_insert_batch", counted)
    async with opened(postgres_url) as store:
        ids = await asyncio.gather(*(store.add(job(f"m{i}"), store.now()) for i in range(200)))
        assert len(set(ids)) == 200 and ids == sorted(ids)
        assert sum(sizes) == 200
        assert sizes[0] == 200  # all 200 were added in one turn of the loop
        # While one batch commits, the next gathers.
        sizes.clear()
        first = asyncio.ensure_future(store.add(job("first"), store.now()))
        await asyncio.sleep(0)
        rest = [store.add(job(f"r{i}"), store.now()) for i in range(20)]
        await asyncio.gather(first, *rest)
        assert sizes in ([1, 20], [21])


async def test_a_job_postgresql_refuses_fails_alone(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        now = store.now()
        results = await asyncio.gather(
            store.add(job("before"), now),
            store.add(job("NUL \x00 inside"), now),
            store.add(job("after", recipients=["a", "b"]), now),
            return_exceptions=True,
        )
        assert isinstance(results[0], int) and isinstance(results[2], int)
        assert isinstance(results[1], StoreError)
        assert "postgresql://" in str(results[1])
        messages = sorted(d.message for d in (await store.claim("c", 10, now, LEASE)).deliveries)
        assert messages == ["after", "after", "before"]


async def test_one_idempotency_key_on_two_hosts_is_one_job(postgres_url: str) -> None:
    async with opened(postgres_url) as a, opened(postgres_url) as b:
        now = a.now()
        key = ("order-1", "digest-1")
        ids = await asyncio.gather(
            *(store.add(job("once", idempotency=key), now) for store in (a, b, a, b))
        )
        assert len(set(ids)) == 1
        with pytest.raises(IdempotencyKeyReused):
            await b.add(job("other", idempotency=("order-1", "digest-2")), now)
        assert len(await a.list_jobs(None, None, 10)) == 1


async def test_other_hosts_are_woken_after_the_commit(postgres_url: str) -> None:
    async with opened(postgres_url) as a, opened(postgres_url) as b:
        assert await b._wakeups.wait_listening(10)
        assert await a._wakeups.wait_listening(10)
        woken_a: list[str] = []
        woken_b: list[tuple[str, int]] = []
        a.on_wake(woken_a.append)
        seen: list[asyncio.Task[int]] = []

        def on_b(channel: str) -> None:
            # Whatever woke B is committed: B can see it at once.
            seen.append(asyncio.ensure_future(b.has_pending(channel)))
            woken_b.append((channel, len(seen)))

        b.on_wake(on_b)
        await a.add(job(channel="alerts"), a.now())
        await eventually(lambda: bool(woken_b), "B woken")
        assert woken_b[0][0] == "alerts"
        assert await seen[0] is True
        # A woke its own dispatcher once, and ignored its own NOTIFY.
        await asyncio.sleep(0.2)
        assert woken_a == ["alerts"]


async def test_notifications_are_coalesced_per_channel(postgres_url: str) -> None:
    async with opened(postgres_url) as a, opened(postgres_url) as b:
        assert await b._wakeups.wait_listening(10)
        woken: list[float] = []
        b.on_wake(lambda channel: woken.append(time.monotonic()) if channel == "c" else None)
        started = time.monotonic()
        for index in range(60):
            await a.add(job(f"m{index}"), a.now())  # one commit each
        last_commit = time.monotonic()
        # The last commit's notification is never lost: it follows the interval.
        await eventually(lambda: bool(woken) and woken[-1] >= last_commit, "the last wake-up")
        await asyncio.sleep(3 * wakeups.INTERVAL)
        elapsed = woken[-1] - started
        assert len(woken) <= elapsed / wakeups.INTERVAL + 2, (len(woken), elapsed)
        assert len(woken) < 60


def full_count(rows: list[Any], now: float) -> dict[str, StoreCounts]:
    counts: dict[str, StoreCounts] = {}
    for channel, state, due_at in rows:
        entry = counts.setdefault(channel, StoreCounts())
        if state == "queued":
            field = "delayed" if due_at > now else "queued"
        else:
            field = "in_flight" if state == "leased" else state
        setattr(entry, field, getattr(entry, field) + 1)
    return counts


async def test_counts_match_a_full_count_through_every_transition(postgres_url: str) -> None:
    chooser = random.Random(16)
    async with opened(postgres_url) as store:
        t0 = float(int(store.now()))

        async def check(now: float) -> None:
            rows = await store._run(
                "read", lambda conn: conn.fetch("SELECT channel, state, due_at FROM deliveries")
            )
            assert await store.counts(now) == full_count(list(rows), now)

        for step in range(40):
            now = t0 + step * 3.7
            for _ in range(chooser.randint(1, 5)):
                delay = chooser.choice([0, 0, 3, 9.5, 10, 25, 400])
                recipients = ["x", "y", "z"][: chooser.randint(1, 3)]
                channel = chooser.choice(["a", "b"])
                await store.add(
                    job(channel=channel, recipients=recipients, delay=delay, ttl=60), now
                )
            claimed = (await store.claim(chooser.choice(["a", "b"]), 4, now, 5)).deliveries
            kinds = [chooser.choice(list(OutcomeKind)) for _ in claimed]
            answers = [
                Outcome(d.id, d.lease_token, k, None, "e")
                for d, k in zip(claimed, kinds, strict=True)
            ]
            if answers and chooser.random() < 0.8:
                await store.complete(answers, POLICY, now)
            if step % 7 == 0:
                await store.expire(now)
                await store.lapse_leases(now, {"a": POLICY, "b": POLICY})
            if step % 11 == 0:
                await store.requeue(now, state="dead")
                await store.prune(now - 20, 5)
            for probe in (now, now + 0.5, now + 9.99, now + 10, now + 31):
                await check(probe)


async def test_prune_goes_in_batches(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        now = store.now()
        for index in range(5):
            await store.add(job(f"m{index}"), now)
        claimed = (await store.claim("c", 10, now, LEASE)).deliveries
        done = [Outcome(d.id, d.lease_token, OutcomeKind.DELIVERED) for d in claimed]
        await store.complete(done, POLICY, now)
        assert await store.prune(now + 1, 2) == 2
        assert await store.prune(now + 1, 2) == 2
        assert await store.prune(now + 1, 2) == 1
        assert await store.prune(now + 1, 2) == 0
        assert await store.list_jobs(None, None, 10) == []


async def test_closing_with_a_notification_held_back_is_clean(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore(postgres_url, pool_size=2)
    await store.open()
    await store.add(job("first"), store.now())
    await store.add(job("second"), store.now())  # within the interval: its NOTIFY waits
    assert store._wakeups._held
    await store.close()
    await asyncio.sleep(2 * wakeups.INTERVAL)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_no_lease_while_paused_stopped_or_cooling_down_on_any_host(
    postgres_url: str,
) -> None:
    assert (claims.PAUSED_FLAG, claims.STOPPED_FLAG) == (
        maintenance.PAUSED_FLAG,
        maintenance.STOPPED_FLAG,
    )
    async with opened(postgres_url) as a, opened(postgres_url) as b:
        now = a.now()
        for channel in ("c", "d"):
            await a.add(job(channel=channel), now)

        async def leasable(channel: str) -> bool:
            # A claim that leases is undone at once, so the next look finds the same.
            result = await a.claim(channel, 1, now, LEASE)
            if result.deliveries:
                await a.recover(now, owner=a.owner)
            return bool(result.deliveries)

        await b.set_flag("paused", "1")
        assert not await leasable("c") and not await leasable("d")
        await b.set_flag("paused", None)
        await b.set_flag("stopped:c", "1")
        assert not await leasable("c") and await leasable("d")
        await b.set_flag("stopped:c", None)
        await b.set_channel_state("c", cooldown_until=now + 30)
        assert not await leasable("c") and await leasable("d")
        assert (await a.claim("c", 1, now + 30, LEASE)).deliveries  # the cool-down is over
