"""The Store's live counts (`store.counts`) against a full count of the table, through a mixed
workload: every transition a delivery can make, a failing operation and a reopen."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from notifierd.errors import StoreError
from notifierd.messages import Delivery, Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import NewJob, StoreCounts
from notifierd.store.counts import DueTimes
from notifierd.store.sqlite import SqliteStore

T0 = 1_700_000_000.0
LEASE = 60.0
POLICY = RetryPolicy(delay=10, backoff=1, max_delay=10, max_attempts=2, jitter=0)


def full_count(path: Path, now: float) -> dict[str, StoreCounts]:
    """Every delivery read and counted, as `status` did before the counts were kept."""
    counts: dict[str, StoreCounts] = {}
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT channel, state, due_at FROM deliveries").fetchall()
    for channel, state, due_at in rows:
        entry = counts.setdefault(channel, StoreCounts())
        if state == "queued":
            field = "delayed" if due_at > now else "queued"
        else:
            field = "in_flight" if state == "leased" else state
        setattr(entry, field, getattr(entry, field) + 1)
    return counts


async def check(store: SqliteStore, now: float) -> None:
    assert await store.counts(now) == full_count(store.path, now)


def answer(delivery: Delivery, kind: OutcomeKind) -> Outcome:
    return Outcome(delivery.id, delivery.lease_token, kind, error=f"{kind.value} answer")


async def test_counts_follow_every_transition(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "notifierd.db")
    await store.open()
    try:
        await check(store, T0)
        for index in range(6):
            await store.add(NewJob("a", f"m{index}", ["r1", "r2"], 0, 3600), T0)
        await store.add(NewJob("b", "later", ["x"], 50, 3600), T0)
        await store.add(NewJob("b", "short-lived", ["x", "y"], 0, 5), T0)
        await store.add(NewJob("b", "delayed past its ttl", ["x"], 100, 20), T0)
        await check(store, T0)

        claimed = (await store.claim("a", 12, T0 + 1, LEASE)).deliveries
        await check(store, T0 + 1)
        kinds = [OutcomeKind.DELIVERED] * 4 + [OutcomeKind.PERMANENT] * 2
        kinds += [OutcomeKind.TEMPORARY] * 3 + [OutcomeKind.UNSTARTED]
        outcomes = [answer(d, k) for d, k in zip(claimed, kinds, strict=False)]
        await store.complete(outcomes, POLICY, T0 + 2)
        # Two deliveries left leased; three wait for a retry (delayed), one is due again.
        await check(store, T0 + 2)
        await check(store, T0 + 11)

        again = (await store.claim("a", 10, T0 + 13, LEASE)).deliveries
        await store.complete([answer(d, OutcomeKind.TEMPORARY) for d in again], POLICY, T0 + 14)
        await check(store, T0 + 14)  # the retried ones are dead now, the unstarted one waits

        assert await store.expire(T0 + 30) == {"b": 3}
        await check(store, T0 + 30)
        lapsed = await store.lapse_leases(T0 + 100, {"a": POLICY})
        assert len(lapsed) == 2  # the two left leased
        await check(store, T0 + 100)

        retried = await store.requeue(T0 + 101, channel="a", state="dead")
        assert retried > 0
        assert await store.requeue(T0 + 101, channel="b", state="expired") == 3
        await check(store, T0 + 101)

        assert await store.prune(T0 + 50, 3) == 3
        await check(store, T0 + 101)
        assert await store.prune(T0 + 200, 1000) > 0
        await check(store, T0 + 101)
        await check(store, T0 + 1000)
    finally:
        await store.close()

    # Leased at the close, queued at the reopen: the counts start from a full count.
    reopened = SqliteStore(tmp_path / "notifierd.db")
    await reopened.open()
    try:
        await reopened.claim("a", 2, T0 + 1001, LEASE)
        await check(reopened, T0 + 1001)
        await reopened.recover(T0 + 1002)
        await check(reopened, T0 + 1002)
    finally:
        await reopened.close()


async def test_a_failed_operation_changes_no_count(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "notifierd.db")
    await store.open()
    try:
        await store.add(NewJob("a", "one", ["r"], 0, 3600), T0)
        with sqlite3.connect(store.path) as conn:
            # Makes every later change of a delivery's row fail inside the Store's transaction.
            conn.execute(
                "CREATE TRIGGER refuse BEFORE UPDATE ON deliveries"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        with pytest.raises(StoreError):
            await store.claim("a", 10, T0, LEASE)
        await check(store, T0)
        assert (await store.counts(T0))["a"].queued == 1
    finally:
        await store.close()


async def test_counts_run_no_statement(tmp_path: Path) -> None:
    """A scrape must not cost a scan of the deliveries (0.3 s at a million rows)."""
    store = SqliteStore(tmp_path / "notifierd.db")
    await store.open()
    try:
        await store.add(NewJob("a", "one", ["r"], 30, 3600), T0)
        statements: list[str] = []
        assert store._engine._conn is not None and store._reader._conn is not None
        store._engine._conn.set_trace_callback(statements.append)
        # The reading connection may only be touched from its own thread.
        await asyncio.get_running_loop().run_in_executor(
            store._reader._executor, store._reader._conn.set_trace_callback, statements.append
        )
        counts = await store.counts(T0)
        assert (counts["a"].queued, counts["a"].delayed) == (0, 1)
        assert statements == []
    finally:
        await store.close()


def test_due_times_pop_each_once_and_settle_what_was_struck() -> None:
    due = DueTimes()
    for due_at in (10.0, 20.0, 20.0, 30.0):
        due.push(due_at)
    due.strike(20.0)
    assert due.count(5.0) == 3
    assert due.count(20.0) == 1
    due.strike(20.0)  # already popped: nothing to settle
    due.push(15.0)  # due already at the horizon: never delayed
    assert due.count(20.0) == 1
    assert due.count(30.0) == 0
