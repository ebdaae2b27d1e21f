"""Background tasks are watched: one that dies is logged by name and stops the daemon with a
non-zero exit; one cancelled by the daemon's own stop is not a death."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from notifierd.config import Channel
from notifierd.daemon import Daemon
from notifierd.errors import EXIT_FAILURE
from notifierd.housekeeping import BackgroundTasks
from notifierd.maintenance import PAUSED_FLAG
from notifierd.settings import Settings
from notifierd.store.sqlite import SqliteStore
from tests.harness import short_socket_dir


class Deaths(list[str]):
    """The names `BackgroundTasks` reported dead; `first` waits for one."""

    def __init__(self) -> None:
        super().__init__()
        self._one = asyncio.Event()

    def __call__(self, name: str) -> None:
        self.append(name)
        self._one.set()

    async def first(self) -> None:
        await asyncio.wait_for(self._one.wait(), timeout=10)


async def test_a_task_that_raises_is_reported_by_name() -> None:
    deaths = Deaths()
    tasks = BackgroundTasks(on_death=deaths)

    async def broken() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("it broke")

    with capture_logs() as logs:
        tasks.start("broken", broken())
        tasks.start("sleeper", asyncio.sleep(3600))
        await deaths.first()

    assert deaths == ["broken"]
    [died] = [entry for entry in logs if entry["event"] == "notifierd.task_died"]
    assert (died["task"], died["error"], died["log_level"]) == ("broken", "it broke", "critical")
    await tasks.close()


async def test_a_task_that_returns_is_a_death_too() -> None:
    deaths = Deaths()
    tasks = BackgroundTasks(on_death=deaths)

    async def done_early() -> None:
        return None

    tasks.start("done-early", done_early())
    await deaths.first()
    assert deaths == ["done-early"]


async def test_close_cancels_without_a_death() -> None:
    deaths: list[str] = []
    tasks = BackgroundTasks(on_death=deaths.append)
    tasks.start("a", asyncio.sleep(3600))
    tasks.start("b", asyncio.sleep(3600))

    await tasks.close()

    assert deaths == []
    assert not [t for t in asyncio.all_tasks() if t.get_name() in ("a", "b")]


class ExpiryFails(SqliteStore):
    """A Store whose expiry raises what no loop expects (not a StoreError)."""

    async def expire(self, now: float) -> dict[str, int]:
        raise RuntimeError("expiry is broken")


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """The daemon takes SIGTERM, SIGINT and SIGHUP and, once stopped, ignores the first two:
    the test process gets its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    saved[signal.SIGHUP] = signal.getsignal(signal.SIGHUP)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


async def test_a_dying_task_stops_the_daemon_with_a_non_zero_exit(
    tmp_path: Path, null_channels: dict[str, Channel], signal_handlers: None
) -> None:
    settings = Settings(
        config=tmp_path / "channels.yaml",
        state_dir=tmp_path / "state",
        socket=short_socket_dir() / "ctl.sock",
        port=0,
    )
    # Paused: the channels start no worker process in this test.
    paused = SqliteStore(settings.database_path)
    await paused.open()
    await paused.set_flag(PAUSED_FLAG, "1")
    await paused.close()
    daemon = Daemon(settings, null_channels, store=ExpiryFails(settings.database_path))

    with capture_logs() as logs:
        code = await asyncio.wait_for(daemon.run(), timeout=30)

    assert code == EXIT_FAILURE
    events = [entry["event"] for entry in logs]
    died = logs[events.index("notifierd.task_died")]
    assert (died["task"], died["error"]) == ("expiry", "expiry is broken")
    assert events.index("notifierd.started") < events.index("notifierd.task_died")
    stopping = logs[events.index("notifierd.stopping")]
    assert stopping["reason"] == "the expiry task died"
    assert events[-1] == "notifierd.stopped"
    assert not settings.socket_path.exists()
