"""ChannelRunner.close: the dispatcher ends whatever wakes it at the same moment."""

from __future__ import annotations

import asyncio

from notifierd.channels.rate_groups import rate_groups
from notifierd.channels.runner import ChannelRunner
from notifierd.config import Channel
from notifierd.metrics import Metrics
from notifierd.processes.handle import spawn_context
from notifierd.store.sqlite import SqliteStore


def _runner(channel: Channel, store: SqliteStore) -> ChannelRunner:
    return ChannelRunner(
        channel,
        store,
        spawn_context(),
        "info",
        on_store_error=lambda exc: None,
        on_worker_exit=lambda: None,
        metrics=Metrics([channel.name]),
        rate_group=rate_groups([channel])[channel.name],
    )


def _dispatchers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("dispatcher:")]


async def test_close_ends_the_dispatcher_when_a_wake_comes_with_the_cancel(
    null_channels: dict[str, Channel], store: SqliteStore
) -> None:
    # A worker's last outcome is applied (and wakes the dispatcher) as the daemon closes the
    # runner: the cancel must not be lost to the wake (CPython gh-86296 in asyncio.wait_for).
    runner = _runner(null_channels["devnull"], store)
    runner.start_dispatcher()
    for _ in range(3):
        await asyncio.sleep(0)  # the dispatcher is asleep, waiting to be woken

    runner.wake()
    close = asyncio.ensure_future(runner.close())
    done, _ = await asyncio.wait([close], timeout=2)

    assert close in done
    assert not _dispatchers()
