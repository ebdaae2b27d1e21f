"""`python -m bench --quick` runs every scenario on a tiny load and prints its table. No
figure is asserted: timings belong to the benchmark, not to the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench import instructions
from bench.load import parse_wrk, run_load, wrk_installed
from bench.scenarios import Measured, Report, Sizes, _ceiling_rows, load
from bench.servers import Baseline
from tests.harness import ROOT


def test_the_benchmark_runs_on_a_tiny_load_and_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "| scenario" in table
    clients = ["(aiohttp client)", "(raw asyncio client)"] + (["(wrk)"] if wrk_installed() else [])
    for client in clients:
        assert f"bare aiohttp, same route, 32 conns {client}" in table
        assert f"intake: POST /api/send, FULL sync, null worker on {client}" in table
        assert f"CPU per request: baseline vs notifierd's parent {client}" in table
    for row in (
        "end-to-end: 300 messages, processes: 1",
        "end-to-end: 300 messages, processes: 2",
        "accept->delivered",
        "start-up to 204",
        "intake with 2,000 delayed deliveries",
        "RSS with the backlog",
        "restart with the backlog",
    ):
        assert row in table, f"{row!r} missing from:\n{table}"
    assert "durable floor: bare aiohttp + a group-committed insert, uvloop (" in table
    assert "notifierd's intake against the durable floor (" in table
    assert "intake, the channel stopped: the parent does no delivery work (" in table
    assert "cores shared perfectly: the most notifierd's CPU allows (" in table
    if instructions.installed():
        assert "instructions per request (callgrind), 100 requests: bare aiohttp" in table
        assert re.search(
            r"durable floor: bare aiohttp \+ a group-committed insert, uvloop +\|", table
        )
        assert "notifierd's parent, each message stored, delivered and logged" in table
    assert "were not 204" not in table


def test_the_durable_floor_stores_every_message_before_its_204(tmp_path: Path) -> None:
    database = tmp_path / "floor.db"
    server = Baseline(durable=database)
    server.start()
    try:
        result = asyncio.run(
            run_load(server.url("/api/send/devnull"), connections=8, count=200, client="raw")
        )
    finally:
        server.stop()
    assert result.accepted == 200
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT COUNT(*), MIN(message), MAX(channel) FROM messages").fetchone()
    assert rows == (200, "bench message привет, world!", "devnull")


WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/api/send/devnull
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.70ms    3.06ms  59.08ms   86.83%
    Req/Sec     4.85k   496.56     5.87k    65.00%
  Latency Distribution
     50%  812.00us
     75%    7.60ms
     90%    9.38ms
     99%    1.26s
  48669 requests in 10.01s, 2.25MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 669
Requests/sec:   4862.09
Transfer/sec:      1.12MB
"""


def test_wrk_output_is_read_whole() -> None:
    result = parse_wrk(WRK_OUTPUT, started_at=5.0)
    assert result.requests == 48669
    assert result.seconds == 10.01
    assert result.statuses == {"2xx": 48000, "other": 669}
    assert result.accepted == 48000
    assert result.errors == 3
    assert result.non_204 == 669 + 3
    assert result.latency_p50_ms == 0.812
    assert result.latency_p99_ms == 1260.0
    assert result.started_at == 5.0


def test_wrk_output_without_failures() -> None:
    clean = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "Non-2xx" not in line and "Socket" not in line
    )
    result = parse_wrk(clean)
    assert (result.accepted, result.non_204, result.errors) == (48669, 0, 0)


def test_the_ceilings_come_from_the_rounds_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    report = Report(Sizes.quick())
    bases = [Measured(1000.0, 900.0), Measured(2000.0, 450.0)]
    # Per request: parent + workers + generator = 2,000 us, then 800 us. Two cores give
    # 1,000 then 2,500 requests per second at the most: 1.0x, then 1.25x of the bare rates.
    intakes = [
        Measured(500.0, 1500.0, workers_cpu_us=100.0, generator_cpu_us=400.0),
        Measured(900.0, 600.0, workers_cpu_us=50.0, generator_cpu_us=150.0),
    ]
    stopped = [Measured(700.0, 1200.0), Measured(1200.0, 1000.0)]

    _ceiling_rows(report, "wrk", bases, intakes, stopped)

    ceiling, cores = report.rows
    assert ceiling.scenario.endswith("the parent does no delivery work (wrk)")
    assert ceiling.figure.endswith("ratios 0.70, 0.60; CPU 1,100 us (the baseline's 675 us: 0.61x)")
    assert ceiling.verdict == "0.65x"
    assert cores.scenario == "  2 cores shared perfectly: the most notifierd's CPU allows (wrk)"
    assert cores.figure == "notifierd 1,125 us + the generator 275 us per request"
    assert cores.verdict == "1.12x"


def test_a_load_tells_the_cpu_its_generator_used() -> None:
    server = Baseline()
    server.start()
    try:
        result = load(server.url("/api/send/devnull"), client="raw", count=300)
    finally:
        server.stop()
    assert result.accepted == 300
    # A Python process that started, imported asyncio and sent 300 requests used some CPU.
    assert result.generator_cpu_s > 0.01
