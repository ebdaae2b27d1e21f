"""The schema's migrations and the guards around the database file, on the Store itself."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from notifierd.errors import StorageLost, StoreError, StoreUnusable
from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore
from notifierd.store.sqlite import guard as sqlite_guard
from notifierd.store.sqlite import schema as sqlite_schema
from notifierd.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

JOB = NewJob("c", "m", ("r",), 0, 60)


@contextlib.contextmanager
def connection(path: Path | str) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


def test_a_new_database_gets_every_migration_and_an_id() -> None:
    with connection(":memory:") as conn:
        assert migrate(conn) == 0
        assert schema_version(conn) == SCHEMA_VERSION
        [(database_id,)] = conn.execute("SELECT value FROM meta WHERE name = 'database_id'")
        assert len(database_id) == 32
        assert migrate(conn) == SCHEMA_VERSION  # nothing left to do


def test_an_appended_migration_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with connection(":memory:") as conn:
        migrate(conn)
        monkeypatch.setattr(sqlite_schema, "MIGRATIONS", (*MIGRATIONS, "CREATE TABLE extra (x);"))
        monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

        assert migrate(conn) == SCHEMA_VERSION
        assert migrate(conn) == SCHEMA_VERSION + 1
        assert schema_version(conn) == SCHEMA_VERSION + 1


def test_a_failing_migration_leaves_the_database_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = "CREATE TABLE extra (x); INSERT INTO jobs VALUES (1, 'c', 'm', 0); SELECT nope();"
    with connection(":memory:") as conn:
        migrate(conn)
        monkeypatch.setattr(sqlite_schema, "MIGRATIONS", (*MIGRATIONS, broken))
        monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

        with pytest.raises(sqlite3.OperationalError, match="nope"):
            migrate(conn)

        assert schema_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() is None
        )


def test_statements_end_where_sqlite_says() -> None:
    script = "-- a comment; not an end\nCREATE TABLE t (x);\nINSERT INTO t VALUES ('a;b');\n"
    assert list(sqlite_schema._statements(script)) == [
        "-- a comment; not an end\nCREATE TABLE t (x);",
        "\nINSERT INTO t VALUES ('a;b');",
    ]


async def test_a_fresh_store_writes_the_marker_and_opens_again(tmp_path: Path) -> None:
    path = tmp_path / "state" / "notifierd.db"
    store = SqliteStore(path)
    await store.open()
    await store.add(JOB, 1.0)
    await store.close()
    assert (tmp_path / "state" / "notifierd.db.created").exists()

    again = SqliteStore(path)
    await again.open()
    assert (await again.get_job(1)) is not None
    await again.close()


async def test_a_file_that_is_no_database_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)

    with pytest.raises(StoreUnusable, match=r"is damaged \(file is not a database\)"):
        await SqliteStore(path).open()


async def test_a_start_without_enough_free_space_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_guard, "MIN_FREE_BYTES", 2**62)

    with pytest.raises(StoreError, match="not enough free space to open the database"):
        await SqliteStore(tmp_path / "notifierd.db").open()

    assert not (tmp_path / "notifierd.db").exists()


class RepeatingTimer(threading.Thread):
    """`threading.Timer`, but calling its function every `interval` until cancelled."""

    def __init__(self, interval: float, function: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.function = function
        self.cancelled = threading.Event()

    def run(self) -> None:
        while not self.cancelled.wait(self.interval):
            self.function()

    def cancel(self) -> None:
        self.cancelled.set()


async def test_the_quick_check_gives_up_after_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notifierd.db"
    with connection(path) as conn:
        migrate(conn)
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
            " INSERT INTO jobs (id, channel, message, created_at) SELECT i, 'c', 'm', 0 FROM n"
        )
    monkeypatch.setattr(sqlite_guard, "QUICK_CHECK_SECONDS", 0.0005)
    # An interrupt that lands before the check's statement has started is a no-op in SQLite; on
    # a loaded machine the timer can fire that early, so the test's timer keeps firing.
    monkeypatch.setattr(threading, "Timer", RepeatingTimer)

    store = SqliteStore(path)
    with structlog.testing.capture_logs() as logs:
        await store.open()
    await store.close()

    assert [entry["event"] for entry in logs] == ["store.quick_check_unfinished"]


async def test_writes_fail_once_the_file_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    store = SqliteStore(path)
    await store.open()
    await store.add(JOB, 1.0)
    path.unlink()
    try:
        with pytest.raises(StorageLost, match="was deleted"):
            await store.add(JOB, 2.0)  # the commit's own check, before the watch's next look
        with pytest.raises(StorageLost):
            await store.set_flag("paused", "1")
        assert (await store.get_job(1)) is not None  # reads go on
    finally:
        await store.close()
    assert not (tmp_path / "notifierd.db-wal").exists()  # set aside: see the next test


def test_the_lost_database_s_wal_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    guard = sqlite_guard.DatabaseGuard(path)
    guard.before_open()
    with connection(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
        guard.after_open(conn)
        path.unlink()
        assert guard.lost() is not None

        moved = guard.set_aside_wal()
    guard.release()

    assert moved is not None
    assert moved.name.startswith("notifierd.db-wal.orphaned-")
    assert not guard.wal.exists()


async def test_a_database_saved_with_dump_and_loaded_again_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    store = SqliteStore(path)
    await store.open()
    await store.add(JOB, 1.0)
    await store.close()
    with connection(path) as conn:
        dump = "\n".join(conn.iterdump())  # as `sqlite3 .dump`: the version is not in it
    path.unlink()
    with connection(path) as conn:
        conn.executescript(dump)
        assert schema_version(conn) == 0

    again = SqliteStore(path)
    await again.open()  # the marker names the same id; the migrations run again, harmlessly
    assert (await again.get_job(1)) is not None
    await again.close()


async def test_the_shared_memory_file_is_allocated_ahead(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "notifierd.db")
    await store.open()
    try:
        shm = (tmp_path / "notifierd.db-shm").stat()
        # Allocated, not sparse: growing into it cannot fault on a full disk.
        assert shm.st_blocks * 512 >= sqlite_guard.SHM_RESERVE_BYTES
    finally:
        await store.close()


async def test_another_process_reading_the_database_leaves_the_shared_memory_alone(
    tmp_path: Path,
) -> None:
    # Closing any descriptor of a file drops the process's fcntl locks on it: had the reserve
    # closed its own, the next process to open the database would take itself for the first,
    # truncate the -shm file and make the daemon fault (SIGBUS) on its mapping.
    path = tmp_path / "notifierd.db"
    shm = tmp_path / "notifierd.db-shm"
    store = SqliteStore(path)
    await store.open()
    try:
        reader = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sqlite3, sys; sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)"
            ".execute('SELECT COUNT(*) FROM jobs').fetchone()",
            str(path),
        )
        assert await reader.wait() == 0
        assert shm.stat().st_size == sqlite_guard.SHM_RESERVE_BYTES
        await store.add(JOB, 1.0)
    finally:
        await store.close()
