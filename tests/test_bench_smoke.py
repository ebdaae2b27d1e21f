"""`python -m bench --quick` runs every scenario on a tiny load and prints its table. No
figure is asserted: timings belong to the benchmark, not to the tests."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.harness import ROOT


def test_the_benchmark_runs_on_a_tiny_load_and_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "| scenario" in table
    for row in (
        "baseline: bare aiohttp",
        "intake: POST /api/send",
        "end-to-end: 300 messages, processes: 1",
        "end-to-end: 300 messages, processes: 2",
        "accept->delivered",
        "start-up to 204",
        "intake with 2,000 delayed deliveries",
        "RSS with the backlog",
        "restart with the backlog",
    ):
        assert row in table, f"{row!r} missing from:\n{table}"
    assert "were not 204" not in table
