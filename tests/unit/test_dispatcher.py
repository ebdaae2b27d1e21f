"""The dispatcher: what it claims from the SQLite Store and hands to which worker, what it gives
back, how long it sleeps, and how its failures are reported. No processes: the pool's workers
are fakes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from notifierd.channels import dispatcher as dispatcher_module
from notifierd.config import Channel, load_channels
from notifierd.errors import StoreError
from notifierd.messages import Outcome
from notifierd.states import OutcomeKind
from notifierd.store import ClaimResult
from notifierd.store.sqlite import SqliteStore
from tests.unit.channel_parts import ChannelParts

WORKERS_2 = """
channels:
  pair:
    worker: "null"
    processes: 2
    prefetch: 3
"""


def channel_from(tmp_path: Path, text: str, name: str) -> Channel:
    path = tmp_path / "channels.yaml"
    path.write_text(text)
    return load_channels(path, 3600)[name]


@pytest.fixture
def parts(null_channels: dict[str, Channel], store: SqliteStore) -> ChannelParts:
    return ChannelParts(null_channels["devnull"], store)


@pytest.fixture
def pair(tmp_path: Path, store: SqliteStore) -> ChannelParts:
    return ChannelParts(channel_from(tmp_path, WORKERS_2, "pair"), store)


async def until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.005)


async def test_an_inactive_channel_claims_nothing(parts: ChannelParts) -> None:
    await parts.add()
    assert await parts.dispatcher.dispatch_once() is None
    assert await parts.states() == ["queued"]


async def test_no_worker_ready_claims_nothing(parts: ChannelParts) -> None:
    await parts.add()
    parts.pool.activate()  # started, not ready yet
    assert await parts.dispatcher.dispatch_once() is None
    assert await parts.states() == ["queued"]


async def test_due_deliveries_go_to_the_ready_worker(parts: ChannelParts) -> None:
    for n in range(3):
        await parts.add(f"m{n}")
    [worker] = parts.start_workers()
    assert await parts.dispatcher.dispatch_once() is None  # nothing else is due
    assert [[d.message for d in batch] for batch in worker.batches] == [["m0", "m1", "m2"]]
    assert await parts.states() == ["leased"] * 3
    assert set(worker.in_flight) == {d.id for d in worker.batches[0]}


async def test_a_full_hand_out_asks_to_come_back_at_once(pair: ChannelParts) -> None:
    for n in range(7):
        await pair.add(f"m{n}")
    first, second = pair.start_workers()
    # Room for 3 + 3: the seventh waits, and the dispatcher looks again straight away.
    assert await pair.dispatcher.dispatch_once() == 0.0
    assert [len(b) for b in first.batches] == [3] and [len(b) for b in second.batches] == [3]
    assert sorted(await pair.states()) == ["leased"] * 6 + ["queued"]
    # No room left: nothing is claimed until an answer frees some.
    assert await pair.dispatcher.dispatch_once() is None


async def test_a_small_claim_is_shared_between_the_workers(pair: ChannelParts) -> None:
    for n in range(4):
        await pair.add(f"m{n}")
    first, second = pair.start_workers()
    await pair.dispatcher.dispatch_once()
    assert [len(b) for b in first.batches] == [2] and [len(b) for b in second.batches] == [2]


async def test_a_cooling_channel_sleeps_until_the_end_of_its_cool_down(
    parts: ChannelParts,
) -> None:
    await parts.add()
    parts.start_workers()
    parts.condition.cool_down(time.time() + 30)
    wait = await parts.dispatcher.dispatch_once()
    assert wait is not None and 29 < wait <= 30
    assert await parts.states() == ["queued"]


async def test_a_delayed_delivery_sets_the_next_wake(parts: ChannelParts) -> None:
    await parts.add(delay=20)
    parts.start_workers()
    wait = await parts.dispatcher.dispatch_once()
    assert wait is not None and 19 < wait <= 20


async def test_a_misconfigured_channel_sends_one_probe_at_a_time(parts: ChannelParts) -> None:
    for n in range(3):
        await parts.add(f"m{n}")
    [worker] = parts.start_workers()
    await parts.misconfigured("401 Unauthorized")
    await parts.dispatcher.dispatch_once()
    assert [len(b) for b in worker.batches] == [1]
    assert await parts.dispatcher.dispatch_once() is None  # the probe has not answered
    assert [len(b) for b in worker.batches] == [1]


async def test_one_recipient_twice_in_a_claim_is_paced(tmp_path: Path, store: SqliteStore) -> None:
    channel = channel_from(
        tmp_path,
        "channels:\n"
        "  tg: {worker: telegram, prefetch: 4, params: {token: '1:AAAbbb_test', chat_id: 42}}\n",
        "tg",
    )
    parts = ChannelParts(channel, store)
    await parts.add("first")
    await parts.add("second")
    [worker] = parts.start_workers()
    assert await parts.dispatcher.dispatch_once() is None  # until the chat's answer
    assert [[d.message for d in b] for b in worker.batches] == [["first"]]
    await parts.outcomes.close()  # the second one was given back
    assert sorted(await parts.states()) == ["leased", "queued"]
    assert await parts.dispatcher.dispatch_once() is None  # the chat is busy
    [sent] = worker.batches[0]
    parts.outcomes.answered(worker, [Outcome(sent.id, sent.lease_token, OutcomeKind.DELIVERED)])
    await parts.outcomes.close()
    # The chat's interval runs from the answer: that is when the dispatcher looks again.
    interval = channel.worker_class.recipient_interval(channel.params, "42")
    wait = await parts.dispatcher.dispatch_once()
    assert wait is not None and 0 < wait <= interval
    assert len(worker.batches) == 1


async def test_the_loop_reports_a_store_error_as_such(
    parts: ChannelParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: object, **kwargs: object) -> object:
        raise StoreError("database is locked")

    monkeypatch.setattr(parts.store, "claim", failing)
    await parts.add()
    parts.start_workers()
    with capture_logs() as logs:
        parts.dispatcher.start()
        await until(lambda: parts.store_errors)
        await parts.dispatcher.close()
    assert [str(e) for e in parts.store_errors] == ["database is locked"]
    assert not [e for e in logs if e["event"] == "dispatcher.failed"]


async def test_the_loop_logs_its_own_fault_with_the_traceback_not_as_a_store_error(
    parts: ChannelParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(prefetch: int) -> object:
        raise ZeroDivisionError("a bug")

    await parts.add()
    parts.start_workers()
    monkeypatch.setattr(parts.pool, "rooms", broken)
    with capture_logs() as logs:
        parts.dispatcher.start()
        await until(lambda: any(e["event"] == "dispatcher.failed" for e in logs))
        await parts.dispatcher.close()
    [failed] = [e for e in logs if e["event"] == "dispatcher.failed"]
    assert failed["channel"] == "devnull" and failed["log_level"] == "error"
    assert failed["exc_info"] is True
    assert parts.store_errors == []


async def test_the_loop_hands_out_when_woken(
    parts: ChannelParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "IDLE_POLL_SECONDS", 3600.0)  # no polling: only a wake
    claims: list[int] = []
    claim = parts.store.claim

    async def counted(*args: Any, **kwargs: Any) -> ClaimResult:
        result = await claim(*args, **kwargs)
        claims.append(len(result.deliveries))
        return result

    monkeypatch.setattr(parts.store, "claim", counted)
    [worker] = parts.start_workers()
    parts.dispatcher.start()
    try:
        await until(lambda: claims == [0])  # it looked, found nothing, and sleeps
        await parts.add()
        parts.dispatcher.wake()
        await until(lambda: worker.batches)
    finally:
        await parts.dispatcher.close()
    assert [d.message for d in worker.batches[0]] == ["hello"]
    assert claims[:2] == [0, 1]


async def test_the_loop_restores_the_channels_condition_before_it_claims(
    parts: ChannelParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims: list[int] = []
    claim = parts.store.claim

    async def counted(*args: Any, **kwargs: Any) -> ClaimResult:
        result = await claim(*args, **kwargs)
        claims.append(len(result.deliveries))
        return result

    await parts.store.set_channel_state(
        "devnull", cooldown_until=parts.store.now() + 30, misconfigured="401"
    )
    monkeypatch.setattr(parts.store, "claim", counted)
    await parts.add()
    [worker] = parts.start_workers()
    parts.dispatcher.start()
    try:
        await until(lambda: parts.condition.misconfigured == "401")
    finally:
        await parts.dispatcher.close()
    assert 29 < parts.condition.cooling() <= 30
    assert claims == [] and worker.batches == []


async def test_the_workers_deadlines_come_from_the_stores_clock(
    parts: ChannelParts, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    skew = 600.0  # the Store's clock (the database's) ten minutes ahead of this host's
    monkeypatch.setattr(store, "now", lambda: time.time() + skew)
    await parts.add()
    [worker] = parts.start_workers()
    await parts.dispatcher.dispatch_once()

    [[sent]] = worker.batches
    [offset] = worker.offsets
    assert sent.leased_until > time.time() + skew  # on the Store's clock
    deadline = sent.leased_until + offset  # the worker's: time.monotonic()
    assert 0 < deadline - time.monotonic() <= parts.channel.lease
    assert deadline - time.monotonic() > parts.channel.lease - 5


async def test_a_delivery_must_start_before_the_stores_fence(
    parts: ChannelParts, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shared Store's host may be declared dead once its fence passes, its leases handed out
    # again: what it holds must not start later, however long the lease.
    fence = time.monotonic() + 2.0
    monkeypatch.setattr(store, "fence_deadline", lambda: fence)
    await parts.add()
    [worker] = parts.start_workers()
    await parts.dispatcher.dispatch_once()

    [[sent]] = worker.batches
    [offset] = worker.offsets
    assert sent.leased_until + offset == pytest.approx(fence)


async def test_a_fence_after_the_lease_changes_nothing(
    parts: ChannelParts, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "fence_deadline", lambda: time.monotonic() + 10 * 86400)
    await parts.add()
    [worker] = parts.start_workers()
    before = store.now()
    await parts.dispatcher.dispatch_once()
    [[sent]] = worker.batches
    assert before + parts.channel.lease <= sent.leased_until <= store.now() + parts.channel.lease
