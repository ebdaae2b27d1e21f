"""The PostgreSQL Store while its database does not answer (`sessions.py`): after the first
failure a probe confirms it; from then on operations fail at once (no connection attempt of
their own, nothing taken as stored), `unreachable()` says why for the health check, the probe
tries again with backoff, and once the database answers the Store resumes by itself. The log
says each of the two changes once."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from notifierd.errors import StoreError, StoreUnreachable
from notifierd.store.base import NewJob
from notifierd.store.postgres.sessions import BACKOFF_SECONDS
from notifierd.store.postgres.store import PostgresStore
from tests.postgres import TempServer, create_database


def job(message: str) -> NewJob:
    return NewJob("c", message, [""], 0, 3600)


async def until(condition: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_an_away_database_is_probed_with_backoff_and_operations_fail_at_once(
    postgres_server: TempServer,
) -> None:
    url = await asyncio.to_thread(create_database, postgres_server.url)
    store = PostgresStore(url, pool_size=3)
    await store.open()
    sessions: list[float] = []
    acquire = store._sessions.acquire

    def counted() -> Any:
        sessions.append(time.monotonic())
        return acquire()

    store._sessions.acquire = counted  # type: ignore[method-assign]
    try:
        before = await store.add(job("before"), store.now())
        assert store.unreachable() is None
        with capture_logs() as logs:
            await asyncio.to_thread(postgres_server.stop, "immediate")
            with pytest.raises(StoreError, match="could not write to the database"):
                await store.add(job("during"), store.now())
            # Said at once; confirmed away by the probe.
            assert store.unreachable() == "the database did not answer"
            await until(lambda: "does not answer" in str(store.unreachable()), "the probe to fail")
            assert str(postgres_server.port) not in str(store.unreachable())

            away_at, tried = time.monotonic(), len(sessions)
            while time.monotonic() - away_at < sum(BACKOFF_SECONDS[:3]):
                with pytest.raises(StoreUnreachable, match="does not answer"):
                    await store.add(job("refused"), store.now())
                with pytest.raises(StoreUnreachable):
                    await store.claim("c", 10, store.now(), 60)
                await asyncio.sleep(0.05)
            # Only the probe (and the heartbeat's first try) asked for a session: a few tries,
            # spaced by the backoff, where every operation would have made one each.
            probes = sessions[tried:]
            assert 1 <= len(probes) <= 5, probes
            assert all(b - a >= BACKOFF_SECONDS[0] * 0.9 for a, b in itertools.pairwise(probes))

            await asyncio.to_thread(postgres_server.start)
            await until(lambda: store.unreachable() is None, "the probe to find it back")
            after = await store.add(job("after"), store.now())
            assert after > before
        events = [entry["event"] for entry in logs]
        assert events.count("store.unreachable") == 1
        assert events.count("store.reachable") == 1
        back = next(entry for entry in logs if entry["event"] == "store.reachable")
        assert back["after_seconds"] >= sum(BACKOFF_SECONDS[:3]) - 1
        # Claims wait for this host's next heartbeat (its last one is older than the outage).
        claimed: list[str] = []
        deadline = time.monotonic() + 10
        while not claimed and time.monotonic() < deadline:
            claimed = [d.message for d in (await store.claim("c", 10, store.now(), 60)).deliveries]
            await asyncio.sleep(0.1)
        assert sorted(claimed) == ["after", "before"]  # none of the refused ones
    finally:
        await store.close()


async def test_a_lost_session_is_not_taken_for_an_away_database(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, pool_size=2)
    async with store:
        await store.add(job("one"), store.now())
        # The server ends every session of the Store but the test's: the pool's next use of
        # one fails, the probe finds the database there at once.
        await store._run(
            "end sessions",
            lambda conn: conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ),
        )
        with capture_logs() as logs:
            for _ in range(3):
                try:
                    await store.add(job("two"), store.now())
                except StoreUnreachable:
                    raise AssertionError("a lost session made the database look away") from None
                except StoreError:
                    continue  # the session the pool handed out was one of the ended ones
                break
            else:
                raise AssertionError("nothing stored after the sessions ended")
            await until(lambda: store.unreachable() is None, "the failure forgotten", 10)
        assert "store.unreachable" not in [entry["event"] for entry in logs]
        assert await store.has_pending("c")
