"""The PostgreSQL scenarios of the benchmark (`python -m bench --store-url ...`, bench.cluster):
they run on a tiny load and leave no database behind; the server's CPU is counted for the
benchmark's database only; the capacity model follows from its figures; a load spreads over
several hosts. No figure is asserted: timings belong to the benchmark, not to the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg

from bench import capacity, pg
from bench.load import run_load
from bench.scenarios import Report, Sizes
from bench.servers import Baseline
from tests.harness import ROOT


def bench_databases(admin_url: str) -> set[str]:
    async def names() -> set[str]:
        conn = await asyncpg.connect(admin_url)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", pg.PREFIX + "%"
            )
        finally:
            await conn.close()
        return {row[0] for row in rows}

    return asyncio.run(names())


def test_the_postgres_scenarios_run_on_a_tiny_load_and_drop_their_databases(
    postgres_admin_url: str,
) -> None:
    before = bench_databases(postgres_admin_url)
    scenarios = ["--scenario", "pg-intake", "--scenario", "pg-cluster", "--scenario", "pg-costs"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *scenarios, "--store-url", postgres_admin_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for row in (
        "postgres intake: one host, POST /api/send, null worker on (raw asyncio client)",
        "sqlite intake in the same rounds",
        "CPU per request, PostgreSQL",
        "cores shared perfectly: the ratio the CPU per request allows",
        "postgres, 3 hosts, one database: accept->delivered at 100 msg/s, round-robin",
        "the same, offered to one host only (3 claiming)",
        "database server CPU with 3 hosts idle",
        "database server CPU per message at 100 msg/s, round-robin",
        "postgres, one host: intake alone, the channel stopped",
        "claim + outcome alone: a backlog of",
        "capacity model: database CPU per message",
        "one PostgreSQL of 8 cores, 70% busy",
    ):
        assert row in table, f"{row!r} missing from:\n{table}"
    # The server runs on this machine: its CPU was read, not left out.
    assert "database server n/a" not in table and "not on this machine" not in table
    # Every 204 stored, every message delivered (the scenarios add notes otherwise).
    assert "were not 204" not in table and "note: postgres" not in table, table
    # Where the server's time goes: statement by statement, or a note saying why not.
    assert "calls, " in table or "pg_stat_statements is not in the server's" in table
    assert bench_databases(postgres_admin_url) == before


def test_without_a_store_url_the_postgres_scenarios_are_refused_by_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", "pg-cluster"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert "need --store-url postgresql://" in done.stderr


def test_an_unreachable_server_is_named_without_its_password() -> None:
    # A port nobody listens on (the benchmark connects, finds nothing, and says so).
    from tests.fakes.server import free_port  # noqa: PLC0415

    url = f"postgresql://bench:s3cret@127.0.0.1:{free_port()}/postgres"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "pg-intake", "--store-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert "cannot reach the PostgreSQL server: postgresql://bench:***@127.0.0.1:" in done.stderr
    assert "s3cret" not in done.stderr


def test_the_sampler_counts_the_backends_of_its_database_only(postgres_admin_url: str) -> None:
    burn = "SELECT count(*) FROM generate_series(1, 3000000)"
    with pg.fresh_database(postgres_admin_url) as database:
        # The benchmark's own session (its reads) is left out, however busy.
        sampler = pg.CpuSampler(database).start()
        database._value(burn)
        quiet = sampler.stop()

        async def elsewhere() -> None:
            conn = await asyncpg.connect(database.url)
            try:
                await conn.fetchval(burn)
            finally:
                await conn.close()

        sampler = pg.CpuSampler(database).start()
        asyncio.run(elsewhere())
        busy = sampler.stop()
    assert quiet.backends is not None and busy.backends is not None
    assert busy.background is not None
    # Counting three million rows takes a backend tens of milliseconds of CPU at the least.
    assert busy.backends > 0.03
    assert quiet.backends < busy.backends / 3


def test_the_capacity_model_follows_from_the_figures() -> None:
    report = Report(Sizes.quick())  # steady rate 100 msg/s over 3 hosts
    report.figures.update(
        {
            "pg:intake_server_us": 100.0,
            "pg:intake_parent_us": 125.0,  # a host flat out: 8,000 msg/s
            "pg:idle_host_us_per_s": 2000.0,
            "pg:steady_us": 600.0,
            "pg:message_us": 50.0,
        }
    )

    capacity.capacity(report)

    summary, *cores = report.rows
    assert summary.figure == (
        "flat out 100 us; at 33 msg/s per host 600 us; full batches 50 us;"
        " 2.0 ms/s per idle host; one host flat out 8,000 msg/s"
    )
    # 8 cores at 70%: 5.6 s of CPU per second; 100 us a message: 56,000 msg/s; a host flat out
    # costs 8,000 x 100 us + 2 ms = 0.802 s/s: 6.98 hosts; at 33.3 msg/s, 22 ms/s: 255 hosts.
    eight = next(row for row in cores if "of 8 cores" in row.scenario)
    assert eight.figure == "56,000 msg/s flat out: 7.0 hosts; 255 hosts at 33 msg/s each"
    assert [row.scenario for row in cores] == [
        f"  one PostgreSQL of {n} cores, 70% busy" for n in capacity.CORES
    ]


def test_the_capacity_model_needs_the_flat_out_figure() -> None:
    report = Report(Sizes.quick())
    report.figures["pg:steady_us"] = 600.0
    capacity.capacity(report)
    assert report.rows == []


def test_a_load_spreads_over_several_hosts(tmp_path: Path) -> None:
    servers = [Baseline(durable=tmp_path / f"host{i}.db") for i in range(3)]
    for server in servers:
        server.start()
    try:
        urls = [server.url("/api/send/devnull") for server in servers]
        result = asyncio.run(run_load(urls, connections=6, count=300, client="raw"))
    finally:
        for server in servers:
            server.stop()
    assert result.accepted == 300
    stored = []
    for i in range(3):
        with contextlib.closing(sqlite3.connect(tmp_path / f"host{i}.db")) as conn:
            stored.append(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    assert sum(stored) == 300
    assert all(count > 0 for count in stored), stored
