"""`python -m bench`: run notifierd's benchmarks and print one table.

Scenarios, each against a real `bin/notifierd` with a temporary state dir (or the bare aiohttp
baseline), the load coming from a process of its own (`bench.load`: wrk, aiohttp's client, or
a raw asyncio client):

- intake      bare aiohttp with the same route (parses the form, answers 204), then
              POST /api/send/devnull, every 204 committed (synchronous=FULL), null worker
              running; 32 connections, with each load generator, in rounds (--repeat), the
              verdict on the median ratio; with the first generator also: the access log
              off, the durable floor (bare aiohttp + a group-committed insert), the channel
              stopped (the parent does no delivery work), and the most the CPU per request of
              notifierd and of the generator would allow with every core shared perfectly
- end-to-end  time from the first POST until 50,000 messages are DELIVERED, processes: 1 and 2;
              accept->delivered latency (the Store's created_at -> updated_at) at 500 msg/s
- startup     start-up to a 204 on /api/ping with an empty Store
- backlog     1,000,000 deliveries delayed by an hour in the Store: start-up, intake, RSS,
              restart
- instructions  instructions per request under callgrind (valgrind), the baseline's process
              against notifierd's parent: a figure the neighbours of a shared machine do not
              move (skipped when valgrind is not installed)
- pg-intake, pg-cluster, pg-costs  with --store-url postgresql://...: one host's intake on
              PostgreSQL against SQLite's; three daemons on one database (latency at a fixed
              rate); the database server's CPU per message; then a capacity model (see
              bench.cluster). Each makes a fresh database on that server and drops it

`--quick` makes every load tiny (the CI smoke test); `--scenario NAME` runs some of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import time
from pathlib import Path

from bench import capacity, cluster, pg
from bench.load import wrk_installed
from bench.scenarios import CLIENT_NAMES, SCENARIOS, Report, Sizes

ALL_SCENARIOS = {**SCENARIOS, **cluster.SCENARIOS}


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{os.cpu_count()} CPUs ({model}){memory}; {platform.system()} {platform.release()};"
        f" Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )


def render(report: Report) -> str:
    header = ("scenario", "figure", "target", "result")
    rows = [header, *((r.scenario, r.figure, r.target, r.verdict) for r in report.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny loads (a smoke test)")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(ALL_SCENARIOS), help="run only these"
    )
    parser.add_argument(
        "--store-url",
        help="a PostgreSQL server (postgresql://USER@HOST:PORT/DATABASE; a user that may"
        " create databases) for the pg-* scenarios; without it they do not run",
    )
    parser.add_argument("--duration", type=float, help="seconds of each intake measurement")
    parser.add_argument(
        "--repeat", type=int, help="rounds of baseline and intake per load generator (default 3)"
    )
    parser.add_argument(
        "--client",
        action="append",
        choices=("wrk", "aiohttp", "raw"),
        help="a load generator to compare intake with its baseline (again for more);"
        " default: wrk (when installed), aiohttp and raw; the scenarios that need a count"
        " or a rate use raw (or aiohttp when raw is not among them)",
    )
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.duration is not None:
        sizes = Sizes(**{**sizes.__dict__, "duration": args.duration})
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repeat must be 1 or more")
        sizes = Sizes(**{**sizes.__dict__, "repeat": args.repeat})
    notes = []
    clients = tuple(args.client or ())
    if not clients:
        clients = ("aiohttp", "raw")
        if wrk_installed():
            clients = ("wrk", *clients)
        else:
            notes.append("wrk is not installed (apt install wrk): no figures with wrk")
    elif "wrk" in clients and not wrk_installed():
        parser.error("wrk is not installed (apt install wrk)")
    names = args.scenario or list(ALL_SCENARIOS)
    if args.store_url is None:
        if any(name in cluster.SCENARIOS for name in args.scenario or ()):
            parser.error("the pg-* scenarios need --store-url postgresql://...")
        if not args.scenario:
            notes.append("no --store-url postgresql://...: the PostgreSQL scenarios did not run")
        names = [name for name in names if name not in cluster.SCENARIOS]
    elif (problem := pg.problem(args.store_url)) is not None:
        parser.error(f"cannot reach the PostgreSQL server: {problem}")
    report = Report(sizes, clients, notes=notes, store_url=args.store_url)
    began = time.perf_counter()
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        ALL_SCENARIOS[name](report)
    capacity.capacity(report)
    print(f"Machine: {machine()}")
    took = time.perf_counter() - began
    print(
        f"Load: intake against its baseline with {', '.join(CLIENT_NAMES[c] for c in clients)};"
        f" counts and rates with the {CLIENT_NAMES[report.client]}; {took:.0f} s in all"
    )
    print()
    print(render(report))
    for note in report.notes:
        print(f"\nnote: {note}", end="")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
