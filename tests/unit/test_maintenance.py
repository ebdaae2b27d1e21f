"""The switches: maintenance and stopped channels, persisted in the SQLite Store's flags and
applied to the channels (here a recording stand-in for the registry: no processes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from notifierd.errors import StoreError
from notifierd.housekeeping import follow_switches
from notifierd.maintenance import PAUSED_FLAG, STOPPED_FLAG, Maintenance
from notifierd.store.sqlite import SqliteStore

CHANNELS = ("alpha", "beta", "gamma")


class Channels:
    """Records what the switches did to each channel; `active` is the outcome."""

    def __init__(self) -> None:
        self.active = set(CHANNELS)
        self.fatal = {"gamma"}
        self.calls: list[tuple[str, str]] = []

    @property
    def names(self) -> Collection[str]:
        return CHANNELS

    def activate(self, name: str) -> None:
        self.calls.append(("activate", name))
        self.active.add(name)
        self.fatal.discard(name)

    def deactivate(self, name: str) -> None:
        self.calls.append(("deactivate", name))
        self.active.discard(name)

    def clear_fatal(self, name: str) -> None:
        self.calls.append(("clear_fatal", name))
        self.fatal.discard(name)


@pytest.fixture
def channels() -> Channels:
    return Channels()


@pytest.fixture
def status_changes() -> list[bool]:
    return []


@pytest.fixture
def maintenance(store: SqliteStore, channels: Channels, status_changes: list[bool]) -> Maintenance:
    switches = Maintenance(store, channels, lambda: status_changes.append(switches.paused))
    return switches


async def reloaded(store: SqliteStore) -> Maintenance:
    """The switches as a restarted daemon reads them."""
    fresh = Maintenance(store, Channels())
    await fresh.load()
    return fresh


async def test_nothing_is_switched_on_a_fresh_store(
    store: SqliteStore, maintenance: Maintenance
) -> None:
    await maintenance.load()

    assert not maintenance.paused and not maintenance.unavailable
    assert maintenance.stopped_channels == frozenset()
    assert all(maintenance.may_run(name) for name in CHANNELS)


async def test_pause_is_stored_and_stops_every_channel(
    store: SqliteStore,
    maintenance: Maintenance,
    channels: Channels,
    status_changes: list[bool],
) -> None:
    await maintenance.pause()

    assert maintenance.paused and maintenance.unavailable
    assert channels.active == set()
    assert status_changes == [True]
    assert await store.get_flags() == {PAUSED_FLAG: "1"}
    assert not any(maintenance.may_run(name) for name in CHANNELS)
    assert (await reloaded(store)).paused


async def test_resume_starts_all_but_the_stopped_channels_and_clears_fatal(
    store: SqliteStore,
    maintenance: Maintenance,
    channels: Channels,
    status_changes: list[bool],
) -> None:
    await maintenance.stop_channel("beta")
    await maintenance.pause()

    await maintenance.resume()

    assert not maintenance.paused
    assert channels.active == {"alpha", "gamma"}
    assert channels.fatal == set()  # resuming is the operator's "try again"
    assert status_changes == [True, False]
    assert await store.get_flags() == {STOPPED_FLAG + "beta": "1"}
    assert not (await reloaded(store)).paused


async def test_a_stop_is_stored_and_outlives_maintenance(
    store: SqliteStore, maintenance: Maintenance, channels: Channels
) -> None:
    await maintenance.stop_channel("beta")

    assert channels.calls == [("deactivate", "beta")]
    assert maintenance.stopped("beta") and not maintenance.may_run("beta")
    assert maintenance.may_run("alpha")
    await maintenance.pause()
    await maintenance.resume()
    assert "beta" not in channels.active
    assert (await reloaded(store)).stopped_channels == {"beta"}


async def test_start_clears_the_stop_and_fatal_and_activates(
    store: SqliteStore, maintenance: Maintenance, channels: Channels
) -> None:
    await maintenance.stop_channel("gamma")
    channels.calls.clear()

    await maintenance.start_channel("gamma")

    assert channels.calls == [("clear_fatal", "gamma"), ("activate", "gamma")]
    assert maintenance.may_run("gamma")
    assert await store.get_flags() == {}
    assert (await reloaded(store)).stopped_channels == frozenset()


async def test_start_while_paused_waits_for_resume(
    maintenance: Maintenance, channels: Channels
) -> None:
    await maintenance.stop_channel("gamma")
    await maintenance.pause()
    channels.calls.clear()

    await maintenance.start_channel("gamma")

    assert channels.calls == [("clear_fatal", "gamma")]
    assert "gamma" not in channels.active
    await maintenance.resume()
    assert "gamma" in channels.active


async def test_nothing_is_activated_once_stopping(
    maintenance: Maintenance, channels: Channels
) -> None:
    await maintenance.pause()
    maintenance.begin_stop()
    channels.calls.clear()

    await maintenance.resume()
    await maintenance.start_channel("alpha")

    assert not maintenance.paused and maintenance.unavailable
    assert not [call for call in channels.calls if call[0] == "activate"]
    assert not any(maintenance.may_run(name) for name in CHANNELS)


async def test_the_stopped_channels_loaded_include_unconfigured_ones(
    store: SqliteStore, maintenance: Maintenance
) -> None:
    await store.set_flag(STOPPED_FLAG + "removed-from-the-file", "1")
    await store.set_flag(PAUSED_FLAG, "1")

    await maintenance.load()

    assert maintenance.paused
    assert maintenance.stopped_channels == {"removed-from-the-file"}


async def test_a_switch_the_store_cannot_keep_is_not_applied(
    tmp_path: Path, channels: Channels
) -> None:
    closed = SqliteStore(tmp_path / "never-opened.db")
    maintenance = Maintenance(closed, channels)

    with pytest.raises(StoreError):
        await maintenance.pause()
    with pytest.raises(StoreError):
        await maintenance.stop_channel("alpha")

    assert not maintenance.paused and not maintenance.stopped("alpha")
    assert channels.calls == [] and channels.active == set(CHANNELS)


@pytest.fixture
async def other_writer(store: SqliteStore) -> AsyncIterator[SqliteStore]:
    """A second Store on the same database: another daemon sharing it, say."""
    other = SqliteStore(store.path)
    await other.open()
    yield other
    await other.close()


async def test_refresh_applies_what_another_writer_switched(
    maintenance: Maintenance,
    channels: Channels,
    other_writer: SqliteStore,
    status_changes: list[bool],
) -> None:
    await maintenance.load()
    assert not await maintenance.refresh()  # nothing changed

    await other_writer.set_flag(STOPPED_FLAG + "beta", "1")
    await other_writer.set_flag(PAUSED_FLAG, "1")
    with capture_logs() as logs:
        assert await maintenance.refresh()

    assert maintenance.paused and maintenance.stopped("beta")
    assert channels.active == set()
    assert status_changes == [True]
    assert [(entry["event"], entry.get("channel"), entry["by"]) for entry in logs] == [
        ("channel.stopped", "beta", "another writer of the store"),
        ("notifierd.paused", None, "another writer of the store"),
    ]
    assert not await maintenance.refresh()

    await other_writer.set_flag(PAUSED_FLAG, None)
    await other_writer.set_flag(STOPPED_FLAG + "beta", None)
    assert await maintenance.refresh()
    assert not maintenance.paused and not maintenance.stopped("beta")
    assert channels.active == set(CHANNELS) and channels.fatal == set()
    assert status_changes == [True, False]


async def test_a_refresh_after_a_command_of_this_daemon_changes_nothing(
    maintenance: Maintenance, channels: Channels, status_changes: list[bool]
) -> None:
    await maintenance.load()
    await maintenance.pause()
    await maintenance.stop_channel("alpha")
    calls = list(channels.calls)

    assert not await maintenance.refresh()
    assert channels.calls == calls and status_changes == [True]


async def test_a_stop_flag_of_a_channel_not_configured_here_is_kept_not_applied(
    maintenance: Maintenance, channels: Channels, other_writer: SqliteStore
) -> None:
    await maintenance.load()
    await other_writer.set_flag(STOPPED_FLAG + "only-elsewhere", "1")

    assert await maintenance.refresh()

    assert maintenance.stopped_channels == {"only-elsewhere"}
    assert channels.calls == []


async def test_the_daemon_follows_a_switch_set_elsewhere_within_about_a_second(
    store: SqliteStore, channels: Channels, other_writer: SqliteStore
) -> None:
    paused = asyncio.Event()
    maintenance = Maintenance(store, channels, paused.set)
    await maintenance.load()
    follower = asyncio.create_task(follow_switches(maintenance))
    try:
        await other_writer.set_flag(PAUSED_FLAG, "1")
        # One poll a second: followed within about a second (2.5 s allows a loaded machine).
        await asyncio.wait_for(paused.wait(), timeout=2.5)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert maintenance.paused and channels.active == set()
