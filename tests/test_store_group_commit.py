"""The SQLite Store's group commit: writes that wait together share one transaction, each
caller learns its own result only after the COMMIT, and one failing write fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from notifierd.errors import StoreError
from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore


def job(message: str, recipients: tuple[str, ...] = ("",)) -> NewJob:
    return NewJob("devnull", message, recipients, delay=0, ttl=60)


async def test_jobs_added_together_get_their_own_ids_and_are_on_disk(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        ids = await asyncio.gather(*(store.add(job(f"m{i}"), 100.0) for i in range(50)))
        more = await store.add(job("fan", ("a", "b", "c")), 100.0)
    finally:
        await store.close()

    assert ids == list(range(1, 51))
    assert more == 51
    with sqlite3.connect(tmp_path / "n.db") as conn:
        messages = dict(conn.execute("SELECT id, message FROM jobs").fetchall())
        fanned = conn.execute(
            "SELECT recipient FROM deliveries WHERE job_id = 51 ORDER BY recipient"
        ).fetchall()
        count = conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    assert messages[7] == "m6"
    assert fanned == [("a",), ("b",), ("c",)]
    assert count == 53


async def test_a_failing_write_fails_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    try:
        added = store.add(job("kept"), 1.0)
        failing = store._write(broken)
        flag = store.set_flag("paused", "1")
        results = await asyncio.gather(added, failing, flag, return_exceptions=True)
        flags = await store.get_flags()
    finally:
        await store.close()

    assert results[0] == 1
    assert isinstance(results[1], StoreError)
    assert results[2] is None
    assert flags == {"paused": "1"}


async def test_writes_after_close_fail_with_a_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await store.add(job("late"), 1.0)


async def test_outcomes_of_one_batch_apply_each_to_its_own_lease(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    policy = RetryPolicy(delay=5, max_attempts=3)
    try:
        for i in range(4):
            await store.add(job(f"m{i}"), 100.0)
        [a, b, c, d] = (await store.claim("devnull", 10, 100.0, 60)).deliveries
        states = await store.complete(
            [
                Outcome(a.id, a.lease_token, OutcomeKind.DELIVERED),
                Outcome(b.id, b.lease_token + 1, OutcomeKind.DELIVERED),  # stale lease
                Outcome(c.id, c.lease_token, OutcomeKind.TEMPORARY, error="down"),
                Outcome(d.id, d.lease_token, OutcomeKind.DELIVERED),
                Outcome(d.id, d.lease_token, OutcomeKind.DELIVERED),  # answered twice
            ],
            policy,
            101.0,
        )
        records = {r.id: r for r in await store.list_deliveries(None, None, 10)}
    finally:
        await store.close()

    assert states == ["delivered", None, "queued", "delivered", None]
    assert [records[x.id].state for x in (a, b, c, d)] == [
        "delivered",
        "leased",
        "queued",
        "delivered",
    ]
    assert records[a.id].updated_at == 101.0
    assert records[c.id].last_error == "down"
