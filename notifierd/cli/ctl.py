"""`notifierctl`: pause, resume, start and stop channels, show status, inspect and retry
deliveries — over the daemon's control socket."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from notifierd.cli.options import add_setting_flags, settings_from
from notifierd.control.client import CommandFailed, NotRunning, call
from notifierd.control.discovery import locate, not_running_message, socket_candidates
from notifierd.errors import EXIT_NOT_RUNNING, ConfigError

STATUS_COLUMNS = (
    "name",
    "worker",
    "state",
    "pids",
    "queued",
    "delayed",
    "in_flight",
    "delivered",
    "failed",
    "dead",
    "expired",
    "last_error",
)
JOB_COLUMNS = ("id", "job_id", "channel", "recipient", "state", "attempts", "updated", "last_error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifierctl", description=__doc__)
    add_setting_flags(parser, ("socket", "state_dir"))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="state and counts per channel")
    status.add_argument("--json", action="store_true", help="print JSON")
    commands.add_parser("pause", help="maintenance: stop delivering, answer 503")
    commands.add_parser("resume", help="leave maintenance")
    stop = commands.add_parser("stop", help="deactivate a channel's workers")
    stop.add_argument("channel")
    start = commands.add_parser("start", help="activate a channel's workers")
    start.add_argument("channel")
    jobs = commands.add_parser("jobs", help="list deliveries, most recently changed first")
    jobs.add_argument("--channel")
    jobs.add_argument("--state")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true", help="print JSON")
    retry = commands.add_parser("retry", help="put dead, failed or expired deliveries back")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--channel")
    retry.add_argument("--state", choices=("dead", "failed", "expired"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"notifierctl: {exc}", file=sys.stderr)
        return 2
    candidates = socket_candidates(settings)
    try:
        return run(args, locate(candidates))
    except NotRunning as exc:
        print(not_running_message(exc, candidates), file=sys.stderr)
        return EXIT_NOT_RUNNING
    except CommandFailed as exc:
        print(f"notifierctl: {args.command}: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, socket_path: Path) -> int:
    command = args.command
    if command == "status":
        result = call(socket_path, "status")
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            print(f"maintenance: {'on (paused)' if result['paused'] else 'off'}")
            print(table(STATUS_COLUMNS, [_status_row(c) for c in result["channels"]]))
        return 0
    if command in ("pause", "resume"):
        call(socket_path, command)
        print("paused" if command == "pause" else "resumed")
        return 0
    if command in ("stop", "start"):
        result = call(socket_path, command, {"channel": args.channel})
        print(f"{result['channel']}: {result['state']}")
        return 0
    if command == "jobs":
        rows = call(
            socket_path, "jobs", {"channel": args.channel, "state": args.state, "limit": args.limit}
        )
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            print(table(JOB_COLUMNS, [_job_row(r) for r in rows]))
        return 0
    if command == "retry":
        if not args.ids and not (args.channel and args.state):
            print(
                "notifierctl: retry: give delivery ids, or --channel and --state", file=sys.stderr
            )
            return 2
        result = call(
            socket_path, "retry", {"ids": args.ids, "channel": args.channel, "state": args.state}
        )
        print(f"requeued {result['requeued']} deliveries")
        return 0
    raise AssertionError(command)


def _status_row(channel: dict[str, Any]) -> list[str]:
    row = dict(channel)
    row["pids"] = ",".join(str(pid) for pid in channel["pids"]) or "-"
    row["last_error"] = channel["last_error"] or ""
    return [str(row[column]) for column in STATUS_COLUMNS]


def _job_row(job: dict[str, Any]) -> list[str]:
    row = dict(job)
    row["updated"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["updated_at"]))
    row["last_error"] = job["last_error"] or ""
    return [str(row[column]) for column in JOB_COLUMNS]


def table(columns: Sequence[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    raise SystemExit(main())
