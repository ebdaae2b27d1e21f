"""The switches: maintenance and stopped channels, persisted in the SQLite Store's flags and
applied to the channels (here a recording stand-in for the registry: no processes)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pytest

from notifierd.errors import StoreError
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
