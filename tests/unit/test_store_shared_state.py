"""The SQLite Store's side of what several hosts will share (the contract in
tests/store_contract holds for every backend; this is what only SQLite promises or shows)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore

T0 = 1_700_000_000.0


def job(channel: str = "c") -> NewJob:
    return NewJob(channel, "m", ("r",), 0, 3600)


async def test_a_lease_records_the_stores_owner(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db", owner="host:1:0001")
    await store.open()
    try:
        await store.add(job(), T0)
        await store.claim("c", 10, T0, 60)
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "n.db") as conn:
        assert conn.execute("SELECT lease_owner FROM deliveries").fetchall() == [("host:1:0001",)]


async def test_recover_with_no_owner_takes_back_every_lease(tmp_path: Path) -> None:
    """One daemon per database: at start-up, whoever held a lease is gone (its own too)."""
    path = tmp_path / "n.db"
    first = SqliteStore(path, owner="gone:1:0001")
    await first.open()
    await first.add(job(), T0)
    await first.add(job(), T0)
    await first.claim("c", 1, T0, 60)
    await first.close()
    second = SqliteStore(path, owner="here:2:0002")
    await second.open()
    try:
        await second.claim("c", 1, T0, 60)
        assert await second.recover(T0 + 1) == 2
    finally:
        await second.close()


async def test_the_flags_version_survives_a_restart_and_ignores_no_change(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    store = SqliteStore(path)
    await store.open()
    try:
        await store.set_flag("paused", "1")
        version = await store.flags_version()
        await store.set_flag("paused", "1")
        await store.set_flag("stopped:x", None)
        assert await store.flags_version() == version
    finally:
        await store.close()
    again = SqliteStore(path)
    await again.open()
    try:
        assert await again.flags_version() == version
        await again.set_flag("paused", None)
        assert await again.flags_version() == version + 1
    finally:
        await again.close()


async def test_a_failing_wake_callback_is_logged_and_the_add_stands(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    woken: list[str] = []

    def broken(channel: str) -> None:
        raise RuntimeError(f"cannot wake {channel}")

    store.on_wake(broken)
    store.on_wake(woken.append)
    try:
        with capture_logs() as logs:
            job_id = await store.add(job("a"), T0)
        assert await store.get_job(job_id) is not None
    finally:
        await store.close()
    assert woken == ["a"]
    assert [(log["event"], log["channel"]) for log in logs] == [("store.wake_failed", "a")]


async def test_without_a_wake_callback_nothing_is_gathered(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        await store.add(job("a"), T0)
        assert store._engine.woken == set()
    finally:
        await store.close()
