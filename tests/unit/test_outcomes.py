"""The outcome handler: the workers' answers applied to the SQLite Store, and what they say
about the whole channel (cool-down, misconfigured, last error); deliveries given back or left
by a process that ended. No processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from notifierd.channels.rate_groups import rate_groups
from notifierd.config import Channel, load_channels
from notifierd.errors import StoreError
from notifierd.messages import Delivery, Outcome
from notifierd.states import DeliveryState, OutcomeKind
from notifierd.store.sqlite import SqliteStore
from tests.unit.channel_parts import ChannelParts, FakeMember
from tests.unit.fake_processes import FakeWorker


@pytest.fixture
def parts(null_channels: dict[str, Channel], store: SqliteStore) -> ChannelParts:
    return ChannelParts(null_channels["devnull"], store)


async def held(parts: ChannelParts, count: int = 1) -> tuple[FakeWorker, list[Delivery]]:
    """`count` deliveries claimed and handed to a worker."""
    for n in range(count):
        await parts.add(f"message {n}")
    [worker] = parts.start_workers()
    deliveries = await parts.claim()
    worker.hand(deliveries, time.monotonic() - time.time())
    parts.rate.started(deliveries, time.time())
    return worker, deliveries


def answer(
    delivery: Delivery,
    kind: OutcomeKind,
    *,
    retry_after: float | None = None,
    error: str | None = None,
    duration: float = 0.0,
) -> Outcome:
    return Outcome(delivery.id, delivery.lease_token, kind, retry_after, error, duration)


async def test_delivered_is_stored_counted_and_wakes_the_channel(parts: ChannelParts) -> None:
    worker, [delivery] = await held(parts)
    await parts.misconfigured("was refused")
    with capture_logs() as logs:
        parts.outcomes.answered(worker, [answer(delivery, OutcomeKind.DELIVERED, duration=0.25)])
        await parts.outcomes.close()
    assert (await parts.record(delivery.id)).state == "delivered"
    assert worker.in_flight == {}
    assert parts.series.by_state["delivered"] == 1
    assert sum(parts.series.latency_buckets) == 1
    assert parts.member.woken == 1
    assert parts.condition.misconfigured is None  # a delivery went through: it works again
    await parts.condition.close()
    assert await parts.store.channel_states() == {}
    [line] = [e for e in logs if e["event"] == "delivery.attempt"]
    assert line["outcome"] == "delivered" and line["state"] == "delivered"
    assert (line["worker_pid"], line["duration_ms"], line["attempt"]) == (worker.pid, 250.0, 1)
    assert line["log_level"] == "info"


async def test_an_answer_not_expected_is_not_applied(parts: ChannelParts) -> None:
    worker, [delivery] = await held(parts)
    stranger = Delivery(delivery.id + 100, 1, "devnull", "", "x", 1)
    parts.outcomes.answered(worker, [answer(stranger, OutcomeKind.DELIVERED)])
    await parts.outcomes.close()
    assert (await parts.record(delivery.id)).state == "leased"
    assert parts.member.woken == 0


async def test_a_stale_lease_is_ignored_by_the_store(parts: ChannelParts) -> None:
    worker, [delivery] = await held(parts)
    stale = Outcome(delivery.id, delivery.lease_token + 1, OutcomeKind.PERMANENT, error="no")
    with capture_logs() as logs:
        parts.outcomes.answered(worker, [stale])
        await parts.outcomes.close()
    assert (await parts.record(delivery.id)).state == "leased"
    assert not [e for e in logs if e["event"] == "delivery.attempt"]
    assert parts.series.by_state["failed"] == 0


async def test_a_temporary_failure_with_retry_after_cools_down_this_channel_only(
    parts: ChannelParts,
) -> None:
    worker, [delivery] = await held(parts)
    other = FakeMember()
    parts.rate.join(other)
    parts.outcomes.answered(
        worker, [answer(delivery, OutcomeKind.TEMPORARY, retry_after=30.0, error="503 busy")]
    )
    await parts.outcomes.close()
    record = await parts.record(delivery.id)
    assert (record.state, record.attempts, record.last_error) == ("queued", 1, "503 busy")
    assert 29 < parts.condition.cooling() <= 30
    assert other.cooled_until == 0.0
    assert parts.condition.last_error == "503 busy"
    assert parts.series.by_state["queued"] == 1


async def test_rate_limited_without_a_time_cools_down_the_whole_group_by_the_delay(
    parts: ChannelParts,
) -> None:
    worker, [delivery] = await held(parts)
    other = FakeMember()
    parts.rate.join(other)
    before = time.time()
    with capture_logs() as logs:
        parts.outcomes.answered(worker, [answer(delivery, OutcomeKind.RATE_LIMITED, error="429")])
        await parts.outcomes.close()
    delay = parts.channel.retry.delay
    assert before + delay <= other.cooled_until <= time.time() + delay
    assert parts.member.cooled_until == other.cooled_until
    record = await parts.record(delivery.id)
    assert (record.state, record.attempts) == ("queued", 0)  # no attempt charged
    [line] = [e for e in logs if e["event"] == "delivery.attempt"]
    assert (line["retry_after"], line["log_level"]) == (delay, "warning")


async def test_a_permanent_refusal_is_logged_as_an_error(parts: ChannelParts) -> None:
    worker, [delivery] = await held(parts)
    with capture_logs() as logs:
        parts.outcomes.answered(worker, [answer(delivery, OutcomeKind.PERMANENT, error="400")])
        await parts.outcomes.close()
    assert (await parts.record(delivery.id)).state == "failed"
    [line] = [e for e in logs if e["event"] == "delivery.attempt"]
    assert (line["log_level"], line["error"], line["state"]) == ("error", "400", "failed")
    assert parts.condition.cooling() == 0.0


async def test_misconfigured_waits_for_the_probe_schedule_kept_in_the_store(
    parts: ChannelParts,
) -> None:
    worker, deliveries = await held(parts, count=2)
    first, second = deliveries
    delay = parts.channel.retry.delay
    before = time.time()
    with capture_logs() as logs:
        parts.outcomes.answered(worker, [answer(first, OutcomeKind.MISCONFIGURED, error="401")])
        await parts.outcomes.close()
        await parts.condition.close()
        kept = (await parts.store.channel_states())["devnull"]
        # Sent alongside: its answer comes while the channel already waits, and moves nothing.
        parts.outcomes.answered(worker, [answer(second, OutcomeKind.MISCONFIGURED, error="401")])
        await parts.outcomes.close()
        await parts.condition.close()
    assert kept.misconfigured == "401"
    assert kept.cooldown_until is not None
    assert before + delay - 0.01 <= kept.cooldown_until <= time.time() + delay + 0.01
    assert await parts.store.channel_states() == {"devnull": kept}
    assert parts.condition.misconfigured == "401"
    assert 0 < parts.condition.cooling() <= delay
    logged = [e for e in logs if e["event"] == "channel.misconfigured"]
    assert [e["log_level"] for e in logged] == ["error", "error"]
    assert 0 < logged[0]["retry_in"] <= delay
    assert not [e for e in logs if e["event"] == "delivery.attempt"]
    records = [await parts.record(d.id) for d in deliveries]
    assert [(r.state, r.attempts) for r in records] == [("queued", 0), ("queued", 0)]


async def test_given_back_deliveries_are_queued_again_uncharged_and_unlogged(
    parts: ChannelParts,
) -> None:
    await parts.add("one")
    await parts.add("two")
    deliveries = await parts.claim()
    with capture_logs() as logs:
        parts.outcomes.give_back(deliveries)
        await parts.outcomes.close()
    for delivery in deliveries:
        record = await parts.record(delivery.id)
        assert (record.state, record.attempts) == ("queued", 0)
    assert not [e for e in logs if e["event"] == "delivery.attempt"]
    assert parts.series.by_state["queued"] == 0


async def test_a_process_that_died_is_charged_for_what_it_was_sending_only(
    parts: ChannelParts,
) -> None:
    worker, [sending, waiting] = await held(parts, count=2)
    worker.sending = sending.id
    worker.exitcode = -9
    parts.outcomes.orphaned(worker, interrupted=False)
    await parts.outcomes.close()
    assert worker.in_flight == {}
    crashed = await parts.record(sending.id)
    assert (crashed.state, crashed.attempts) == ("queued", 1)
    assert crashed.last_error == "the worker process died (exit code -9) while sending"
    unstarted = await parts.record(waiting.id)
    assert (unstarted.state, unstarted.attempts, unstarted.last_error) == ("queued", 0, None)
    assert parts.rate.pacer.busy(time.time()) == set()


async def test_a_process_stopped_on_purpose_is_charged_nothing(parts: ChannelParts) -> None:
    worker, [sending] = await held(parts)
    worker.sending = sending.id
    worker.exitcode = -9
    parts.outcomes.orphaned(worker, interrupted=True)
    await parts.outcomes.close()
    record = await parts.record(sending.id)
    assert (record.state, record.attempts) == ("queued", 0)


async def test_a_store_error_is_reported_and_the_lease_stays(
    parts: ChannelParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, [delivery] = await held(parts)

    async def failing(*args: object) -> list[str | None]:
        raise StoreError("disk full")

    monkeypatch.setattr(parts.store, "complete", failing)
    parts.outcomes.answered(worker, [answer(delivery, OutcomeKind.DELIVERED)])
    await parts.outcomes.close()
    assert [str(e) for e in parts.store_errors] == ["disk full"]
    monkeypatch.undo()
    assert (await parts.record(delivery.id)).state == "leased"
    assert parts.member.woken == 0


async def test_answers_free_the_recipient_for_the_other_channels_of_the_group(
    tmp_path: Path, store: SqliteStore
) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  a: {worker: telegram, params: {token: '1:AAAbbb_test', chat_id: 42}}\n"
        "  b: {worker: telegram, params: {token: '1:AAAbbb_test', chat_id: 43}}\n"
    )
    channels = load_channels(path, 3600)
    groups = rate_groups(channels.values())
    parts = ChannelParts(channels["a"], store, groups["a"])
    sibling = FakeMember()
    groups["a"].join(sibling)
    worker, [delivery] = await held(parts)
    assert groups["a"].pacer.busy(time.time()) == {"42"}
    parts.outcomes.answered(worker, [answer(delivery, OutcomeKind.DELIVERED)])
    assert sibling.woken == 1  # at once, before the Store has it
    await parts.outcomes.close()
    assert parts.member.woken == 1  # once the Store has it
    assert (await parts.record(delivery.id)).state == DeliveryState.DELIVERED
