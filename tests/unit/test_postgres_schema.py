"""The PostgreSQL Store's start-up: migrations (once, under a lock, whoever starts first), a
database too new or out of reach, a missing driver, and how its sessions are set up."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from notifierd.errors import StoreError, StoreUnusable
from notifierd.store.base import NewJob
from notifierd.store.factory import url_without_password
from notifierd.store.postgres import postgres_store
from notifierd.store.postgres.schema import SCHEMA_VERSION
from notifierd.store.postgres.store import PostgresStore
from tests.fakes.server import free_port


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_url)
    try:
        yield conn
    finally:
        await conn.close()


def with_password(url: str, password: str) -> str:
    """The same URL with a password (trust authentication ignores it)."""
    return url.replace("postgres@", f"postgres:{password}@", 1)


async def test_a_fresh_database_is_migrated(postgres_url: str, admin: asyncpg.Connection) -> None:
    store = PostgresStore(postgres_url, pool_size=2)
    await store.open()
    await store.close()
    versions = [row[0] for row in await admin.fetch("SELECT version FROM notifierd_migrations")]
    assert sorted(versions) == list(range(1, SCHEMA_VERSION + 1))
    # A second start finds it up to date and applies nothing.
    again = PostgresStore(postgres_url, pool_size=2)
    await again.open()
    await again.close()
    assert await admin.fetchval("SELECT count(*) FROM notifierd_migrations") == SCHEMA_VERSION


async def test_hosts_starting_together_migrate_once(
    postgres_url: str, admin: asyncpg.Connection
) -> None:
    stores = [PostgresStore(postgres_url, pool_size=1) for _ in range(8)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        applied = await admin.fetch(
            "SELECT version, count(*) FROM notifierd_migrations GROUP BY 1 ORDER BY 1"
        )
        assert [(row[0], row[1]) for row in applied] == [
            (version, 1) for version in range(1, SCHEMA_VERSION + 1)
        ]
        # Every one of them works on the same schema.
        ids = await asyncio.gather(
            *(store.add(NewJob("c", "m", [""], 0, 60), store.now()) for store in stores)
        )
        assert len(set(ids)) == len(stores)
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_newer_database_is_refused(postgres_url: str, admin: asyncpg.Connection) -> None:
    first = PostgresStore(postgres_url, pool_size=1)
    await first.open()
    await first.close()
    await admin.execute(
        "INSERT INTO notifierd_migrations (version) VALUES ($1)", SCHEMA_VERSION + 1
    )
    url = with_password(postgres_url, "s3cret-pw")
    with pytest.raises(StoreUnusable) as refused:
        await PostgresStore(url, pool_size=1).open()
    message = str(refused.value)
    assert "s3cret-pw" not in message
    assert url_without_password(url) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"versions up to {SCHEMA_VERSION}" in message
    # Nothing was changed.
    assert await admin.fetchval("SELECT max(version) FROM notifierd_migrations") == (
        SCHEMA_VERSION + 1
    )


async def test_an_unreachable_database_names_the_url_without_its_password() -> None:
    url = f"postgresql://notifierd:s3cret-pw@127.0.0.1:{free_port()}/queue"
    with pytest.raises(StoreError) as failed:
        await PostgresStore(url).open()
    message = str(failed.value)
    assert "s3cret-pw" not in message
    assert f"postgresql://notifierd:***@127.0.0.1:{url.split(':')[3]}" in message
    assert message.startswith("cannot connect to the database")


async def test_an_unknown_database_is_a_clear_error(postgres_admin_url: str) -> None:
    url = postgres_admin_url.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(StoreError, match=r"cannot connect to the database .*no_such_database"):
        await PostgresStore(url).open()


def test_without_the_driver_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg raises ImportError
    with pytest.raises(StoreUnusable, match=r"pip install 'notifierd\[postgresql\]'"):
        postgres_store("postgresql://postgres@127.0.0.1/db")


async def test_sessions_are_set_up_for_a_queue(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, pool_size=2)
    await store.open()
    try:

        async def settings(conn: asyncpg.Connection) -> list[str]:
            return [
                await conn.fetchval(f"SHOW {name}")
                for name in (
                    "plan_cache_mode",
                    "statement_timeout",
                    "idle_in_transaction_session_timeout",
                )
            ]

        assert await store._run("read", settings) == ["force_custom_plan", "30s", "30s"]
    finally:
        await store.close()


async def test_the_queue_table_is_tuned_for_churn(
    postgres_url: str, admin: asyncpg.Connection
) -> None:
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    await store.close()
    options = await admin.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")
    assert "fillfactor=70" in options
    assert "autovacuum_vacuum_scale_factor=0.01" in options


async def test_store_clock_is_the_databases(
    postgres_url: str, admin: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(postgres_url, pool_size=1)
    await store.open()
    try:
        # This host's wall clock an hour off: the Store's clock does not follow it.
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        server = await admin.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
        assert abs(store.now() - server) < 1.0
    finally:
        await store.close()
