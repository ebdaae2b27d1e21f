"""Idempotency keys in the SQLite Store: one job per (channel, key), even for requests that
share one group-commit transaction; a key reused for another message is refused; keys are kept
across a reopen and pruned with their jobs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from notifierd.api.idempotency import request_digest
from notifierd.errors import IdempotencyKeyReused
from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore


def keyed(message: str, key: str | None, channel: str = "devnull") -> NewJob:
    idempotency = None if key is None else (key, request_digest(message, 0))
    return NewJob(channel, message, ("",), delay=0, ttl=60, idempotency=idempotency)


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_one_key_in_one_transaction_makes_one_job(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        # Scheduled in one turn of the loop: they share one transaction.
        ids = await asyncio.gather(
            store.add(keyed("a", None), 1.0),
            *(store.add(keyed("same", "k1"), 1.0) for _ in range(10)),
            store.add(keyed("b", None), 1.0),
        )
        again = await store.add(keyed("same", "k1"), 2.0)
    finally:
        await store.close()

    assert ids[0] == 1 and ids[-1] == 3
    assert set(ids[1:-1]) == {2} and again == 2
    assert rows(tmp_path / "n.db", "SELECT COUNT(*) FROM jobs") == [(3,)]
    assert rows(tmp_path / "n.db", "SELECT COUNT(*) FROM deliveries") == [(3,)]


async def test_a_key_reused_for_another_message_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        together = await asyncio.gather(
            store.add(keyed("first", "k"), 1.0),
            store.add(keyed("second", "k"), 1.0),
            return_exceptions=True,
        )
        later = await asyncio.gather(store.add(keyed("third", "k"), 1.0), return_exceptions=True)
    finally:
        await store.close()

    assert together[0] == 1
    for refused in (together[1], later[0]):
        assert isinstance(refused, IdempotencyKeyReused) and refused.job_id == 1
    assert rows(tmp_path / "n.db", "SELECT COUNT(*) FROM jobs") == [(1,)]


async def test_keys_are_per_channel_durable_and_pruned_with_their_job(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        first = await store.add(keyed("m", "k", "one"), 1.0)
        other = await store.add(keyed("m", "k", "two"), 1.0)
    finally:
        await store.close()
    assert first != other

    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        assert await store.add(keyed("m", "k", "one"), 2.0) == first
        await store._write(lambda conn: conn.execute("UPDATE deliveries SET state = 'delivered'"))
        assert await store.prune(before=10.0, limit=100) == 2
        fresh = await store.add(keyed("m", "k", "one"), 20.0)
    finally:
        await store.close()
    # A new job, not the pruned one (whose id it may take again: ids follow the largest kept).
    assert rows(tmp_path / "n.db", "SELECT id, created_at FROM jobs") == [(fresh, 20.0)]
    assert rows(tmp_path / "n.db", "SELECT channel, key, job_id FROM idempotency_keys") == [
        ("one", "k", fresh)
    ]


async def test_a_keyed_job_inserted_alone_after_a_failed_batch_keeps_its_key(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "n.db")
    await store.open()
    try:
        # A job id already taken makes the batch insert fail: each job is then tried alone.
        await store._write(
            lambda conn: conn.execute(
                "INSERT INTO jobs (id, channel, message, created_at) VALUES (1, 'x', 'x', 0)"
            )
        )
        store._engine._jobs._next_job_id = 1
        first = await store.add(keyed("m", "k"), 1.0)
        again = await store.add(keyed("m", "k"), 1.0)
    finally:
        await store.close()
    assert first == again == 2
    assert rows(tmp_path / "n.db", "SELECT job_id FROM idempotency_keys") == [(2,)]
