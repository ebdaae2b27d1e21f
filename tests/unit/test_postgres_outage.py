"""The PostgreSQL Store while its server is away: every operation fails with a StoreError (a job
is never taken as stored when it was not), and once the server is back the Store resumes by
itself, wake-ups across hosts included."""

from __future__ import annotations

import asyncio
import time

import pytest

from notifierd.errors import StoreError
from notifierd.store.base import NewJob
from notifierd.store.postgres.store import PostgresStore
from tests.postgres import TempServer, create_database


def job(message: str) -> NewJob:
    return NewJob("c", message, [""], 0, 3600)


async def until_ok(store: PostgresStore, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await store.add(job("after"), store.now())
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_the_store_resumes_after_a_server_restart(postgres_server: TempServer) -> None:
    url = await asyncio.to_thread(create_database, postgres_server.url)
    a = PostgresStore(url, pool_size=3)
    b = PostgresStore(url, pool_size=3)
    await a.open()
    await b.open()
    try:
        assert await b._wakeups.wait_listening(10)
        before = await a.add(job("before"), a.now())
        await asyncio.to_thread(postgres_server.stop, "immediate")

        started = time.monotonic()
        with pytest.raises(StoreError, match=r"could not write to the database postgresql://"):
            await a.add(job("during"), a.now())
        with pytest.raises(StoreError):
            await a.claim("c", 10, a.now(), 60)
        with pytest.raises(StoreError):
            await a.counts(a.now())
        assert time.monotonic() - started < 15  # failed, did not hang
        assert not await b._wakeups.wait_listening(0.5)

        await asyncio.to_thread(postgres_server.start)
        after = await until_ok(a)
        assert after > before
        # B listens again and is woken by A's intake.
        assert await b._wakeups.wait_listening(15)
        woken: list[str] = []
        event = asyncio.Event()

        def wake(channel: str) -> None:
            woken.append(channel)
            event.set()

        b.on_wake(wake)
        await a.add(job("woken"), a.now())
        await asyncio.wait_for(event.wait(), 10)
        assert woken == ["c"]
        # What was committed before the outage is there; the refused job is not.
        messages = sorted(d.message for d in (await b.claim("c", 10, b.now(), 60)).deliveries)
        assert "before" in messages and "during" not in messages
    finally:
        await a.close()
        await b.close()
