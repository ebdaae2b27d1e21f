"""The Store's schema on the hot path: the statements run for every message must not make
SQLite build temporary tables, and the prune query must use its index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore
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
