"""The channel registry (SPEC's wrapper) over the SQLite Store, without worker processes: no
channel is activated here (the real-process tests do that)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.metrics import Metrics
from notifierd.states import ChannelState
from notifierd.store.sqlite import SqliteStore


class Switches:
    def __init__(self, paused: bool = False, stopped: frozenset[str] = frozenset()) -> None:
        self.paused = paused
        self._stopped = stopped

    def stopped(self, name: str) -> bool:
        return name in self._stopped


@pytest.fixture
def metrics(null_channels: dict[str, Channel]) -> Metrics:
    return Metrics(list(null_channels))


@pytest.fixture
async def registry(
    store: SqliteStore, metrics: Metrics, null_channels: dict[str, Channel]
) -> AsyncIterator[ChannelRegistry]:
    channels = ChannelRegistry(store, metrics, log_level="info")
    channels.register_all(null_channels)
    yield channels
    await channels.stop(grace=1.0)


def dispatchers() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("dispatcher:")}


def test_every_channel_is_registered_by_name(
    registry: ChannelRegistry, null_channels: dict[str, Channel]
) -> None:
    assert list(registry.names) == ["devnull", "lower", "fanout"]
    assert registry.channels == null_channels
    assert registry.exists("fanout")
    assert not registry.exists("nope") and not registry.exists("")


async def test_create_job_stores_one_delivery_per_recipient(
    registry: ChannelRegistry, store: SqliteStore, metrics: Metrics
) -> None:
    fanout = registry.channels["fanout"]

    job_id = await registry.create_job(fanout, "привет", delay=0)

    job = await store.get_job(job_id)
    assert job is not None and (job.channel, job.message) == ("fanout", "привет")
    assert sorted(delivery.recipient for delivery, _ in job.deliveries) == ["a", "b", "c"]
    assert metrics.channel("fanout").accepted == 1
    assert metrics.channel("devnull").accepted == 0
    claimed = await store.claim("fanout", 10, now=job.created_at + 1, lease_seconds=30)
    assert len(claimed.deliveries) == 3


async def test_create_job_keeps_the_delay_and_the_idempotency_key(
    registry: ChannelRegistry, store: SqliteStore
) -> None:
    devnull = registry.channels["devnull"]

    first = await registry.create_job(devnull, "once", delay=60, idempotency=("k", "d"))
    again = await registry.create_job(devnull, "once", delay=60, idempotency=("k", "d"))

    assert again == first
    [record] = await store.list_deliveries("devnull", None, 10)
    assert record.due_at == pytest.approx(record.created_at + 60)
    assert record.expires_at == pytest.approx(record.created_at + 3600)  # the channel's ttl


async def test_states_follow_the_switches(registry: ChannelRegistry) -> None:
    assert registry.states(Switches()) == dict.fromkeys(("devnull", "lower", "fanout"), "running")
    assert registry.state("lower", Switches(paused=True)) is ChannelState.PAUSED
    # A stop shows through maintenance.
    stopped = Switches(paused=True, stopped=frozenset({"lower"}))
    assert registry.states(stopped) == {"devnull": "paused", "lower": "stopped", "fanout": "paused"}


async def test_clear_fatal(registry: ChannelRegistry) -> None:
    registry.runner("devnull").fatal_reason = "worker 0 failed to start 3 times in a row"
    assert registry.state("devnull", Switches()) is ChannelState.FATAL

    registry.clear_fatal("devnull")

    assert registry.state("devnull", Switches()) is ChannelState.RUNNING


async def test_start_runs_the_dispatchers_and_only_the_channels_that_may_run(
    registry: ChannelRegistry,
) -> None:
    registry.start(may_run=lambda name: False)

    assert dispatchers() == {"dispatcher:devnull", "dispatcher:lower", "dispatcher:fanout"}
    assert not any(registry.runner(name).active for name in registry.names)
    assert not any(registry.runner(name).processes() for name in registry.names)
    registry.wake_all()
    registry.release("devnull", 12345)  # a lapsed lease no process holds
    registry.release("nope", 1)

    await registry.stop(grace=1.0)
    assert dispatchers() == set()
    await registry.stop(grace=1.0)  # a second stop does nothing


async def test_stop_before_start_does_nothing(registry: ChannelRegistry) -> None:
    await registry.stop(grace=1.0)
    assert dispatchers() == set()


async def test_the_stores_wake_up_reaches_the_channels_dispatcher_once_per_commit(
    registry: ChannelRegistry, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken: list[str] = []
    for name in registry.names:
        monkeypatch.setattr(registry.runner(name), "wake", lambda name=name: woken.append(name))
    store.on_wake(registry.wake)  # as the daemon does

    await registry.create_job(registry.channels["fanout"], "three recipients", delay=0)
    assert woken == ["fanout"]

    registry.wake("devnull")  # another host's commit, through the Store
    registry.wake("not configured here")
    assert woken == ["fanout", "devnull"]
