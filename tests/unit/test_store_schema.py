"""The Store's schema on the hot path: the statements run for every message must not make
SQLite build temporary tables, and the prune query must use its index. And the migrations from
earlier versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from notifierd.store import NewJob
from notifierd.store.base import ChannelStateRecord
from notifierd.store.sqlite import SqliteStore, schema
from notifierd.store.sqlite.intake import INSERT_DELIVERIES
from notifierd.store.sqlite.rows import MAX_PARAMETERS, RowsInsert
from notifierd.store.sqlite.schema import FINISHED, MIGRATIONS, migrate


def opcodes(conn: sqlite3.Connection, sql: str, arguments: tuple[object, ...]) -> list[str]:
    return [str(row[1]) for row in conn.execute(f"EXPLAIN {sql}", arguments)]


def test_inserting_and_finishing_a_delivery_builds_no_temporary_table() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    insert = opcodes(conn, INSERT_DELIVERIES.sql(1), (1, "c", "r", 1.0, 2.0, 1.0, 1.0))
    finish = opcodes(
        conn,
        "UPDATE deliveries SET state = 'delivered', lease_token = NULL, leased_until = NULL,"
        " last_error = NULL, updated_at = ? WHERE id = ?",  # the partial indexes' part of it
        (1.0, 1),
    )
    assert "OpenEphemeral" not in insert
    assert "OpenEphemeral" not in finish


def test_the_prune_query_uses_the_index_of_finished_deliveries() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE {FINISHED} AND updated_at < ?",
        (1.0,),
    ).fetchall()
    assert "deliveries_done" in str(plan)


async def test_an_earlier_schema_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0].replace("DROP INDEX IF EXISTS deliveries_finished;", ""))
    old.execute(
        "CREATE INDEX deliveries_finished ON deliveries (updated_at)"
        " WHERE state IN ('delivered', 'failed', 'dead', 'expired')"
    )
    old.commit()
    old.close()

    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.add(NewJob("c", "m", ("r",), 0, 60), 1.0) == 1
    finally:
        await store.close()

    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "deliveries_finished" not in names
    assert "deliveries_done" in names


def test_rows_go_in_chunks_under_the_smallest_parameter_limit() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a INTEGER, b TEXT, c TEXT)")
    insert = RowsInsert("INSERT INTO t (a, b, c)", "(?, ?, 'x')")
    rows = [(n, str(n)) for n in range(1_000)]  # 2,000 parameters: three statements
    insert.run(conn, rows)
    assert insert.chunk * insert.width <= MAX_PARAMETERS < 999
    assert conn.execute("SELECT COUNT(*), SUM(a), MIN(c), MAX(c) FROM t").fetchone() == (
        1_000,
        sum(range(1_000)),
        "x",
        "x",
    )
    assert conn.execute("SELECT b FROM t WHERE a = 567").fetchone() == ("567",)


def version_3_database(path: Path) -> None:
    """A database as notifierd wrote it before migration 4: a leased delivery, a flag."""
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO jobs (id, channel, message, created_at) VALUES (1, 'c', 'm', 1.0)")
    conn.execute(
        "INSERT INTO deliveries (job_id, channel, recipient, state, due_at, expires_at,"
        " attempts, lease_token, leased_until, created_at, updated_at)"
        " VALUES (1, 'c', 'r', 'leased', 1.0, 9e9, 1, 42, 61.0, 1.0, 1.0)"
    )
    conn.execute("INSERT INTO flags (name, value) VALUES ('paused', '1')")
    conn.close()


async def test_migration_4_from_version_3_keeps_leases_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "notifierd.db"
    version_3_database(path)

    store = SqliteStore(path, owner="here:1:0001")
    await store.open()
    try:
        # The old lease has no owner: a recovery without one takes it back.
        assert await store.recover(2.0, owner="someone:2:0002") == 0
        assert await store.recover(2.0) == 1
        assert await store.get_flags() == {"paused": "1"}
        assert await store.flags_version() == 0
        assert await store.channel_states() == {}
        await store.set_channel_state("c", misconfigured="bad token")
        assert await store.channel_states() == {"c": ChannelStateRecord(None, "bad token")}
        [delivery] = (await store.claim("c", 10, 3.0, 60)).deliveries
        assert delivery.attempt == 2  # the attempt of the lost lease stays counted
    finally:
        await store.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (4,)
    assert conn.execute("SELECT lease_owner FROM deliveries").fetchall() == [("here:1:0001",)]
    conn.close()


def test_migration_4_runs_again_on_a_database_that_has_it() -> None:
    """A database loaded from `sqlite3 .dump` has every table but has lost its version."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO flags (name, value) VALUES ('paused', '1')")
    conn.execute("UPDATE meta SET value = '7' WHERE name = 'flags_version'")
    conn.execute("PRAGMA user_version = 0")
    assert migrate(conn) == 0
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert conn.execute("SELECT value FROM meta WHERE name = 'flags_version'").fetchone() == ("7",)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(deliveries)")]
    assert columns.count("lease_owner") == 1


def test_a_migration_error_other_than_a_present_column_still_fails() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        schema._execute(conn, "ALTER TABLE nowhere ADD COLUMN x TEXT")
