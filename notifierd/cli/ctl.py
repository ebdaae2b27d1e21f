"""`notifierctl`: pause, resume, start and stop channels, show status and the hosts sharing the
queue, drain this host, inspect and retry jobs and their deliveries — over the daemon's
control socket; and send a message or show a job over the HTTP API (`send`, `job`:
`cli.remote`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from notifierd import __version__
from notifierd.api.journal import iso
from notifierd.cli import remote
from notifierd.cli.options import add_setting_flags, settings_from
from notifierd.control.client import CommandFailed, NotRunning, call
from notifierd.control.discovery import locate, not_running_message, socket_candidates
from notifierd.errors import EXIT_NOT_RUNNING, ConfigError
from notifierd.states import RETRYABLE_STATES, DeliveryState

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
#: `status`: one row per host using the Store.
HOST_COLUMNS = ("node", "heartbeat", "pid", "draining", "leases", "rate_keys", "channels")
NODE_COLUMNS = ("node", "version", "started", "heartbeat", "draining", "leader", "leases")
JOB_COLUMNS = ("job_id", "channel", "created", "updated", "deliveries", "last_error")
DELIVERY_COLUMNS = (
    "id",
    "job_id",
    "channel",
    "recipient",
    "state",
    "attempts",
    "updated",
    "last_error",
)
STATES = tuple(state.value for state in DeliveryState)
RETRYABLE = tuple(sorted(state.value for state in RETRYABLE_STATES))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifierctl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"notifierctl {__version__}")
    add_setting_flags(parser, ("socket", "state_dir"))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status", help="state and counts per channel, and one row per host sharing the queue"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    nodes = commands.add_parser(
        "nodes", help="the hosts sharing the queue: version, heartbeat, draining, leader, leases"
    )
    nodes.add_argument("--json", action="store_true", help="print JSON")
    commands.add_parser(
        "drain", help="this host claims nothing new and finishes what it holds (upgrades)"
    )
    commands.add_parser("undrain", help="this host claims again")
    commands.add_parser("pause", help="maintenance: stop delivering, answer 503")
    commands.add_parser("resume", help="leave maintenance")
    stop = commands.add_parser(
        "stop", help="deactivate a channel's workers; kept across restarts until `start`"
    )
    stop.add_argument("channel")
    start = commands.add_parser("start", help="activate a channel's workers")
    start.add_argument("channel")
    jobs = commands.add_parser(
        "jobs", help="list jobs, newest first, their deliveries counted by state"
    )
    jobs.add_argument("--channel", help="only this channel's")
    jobs.add_argument(
        "--state",
        choices=STATES,
        help=f"only those with a delivery in this state (one of: {', '.join(STATES)})",
    )
    jobs.add_argument("--limit", type=int, default=50, help="at most this many rows (50)")
    jobs.add_argument(
        "--deliveries",
        action="store_true",
        help="one row per delivery instead, most recently changed first",
    )
    jobs.add_argument("--json", action="store_true", help="print JSON")
    retry = commands.add_parser(
        "retry",
        help="put a job's dead, failed or expired deliveries back in the queue",
        description="Retry the dead, failed and expired deliveries of the jobs named by id "
        "(the X-Job-Id the API answered), of the deliveries named by id (--delivery), or of "
        "a channel (--channel, with --state).",
    )
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="job ids")
    retry.add_argument(
        "--delivery",
        action="store_true",
        help="the IDs are delivery ids (as `jobs --deliveries` shows), not job ids",
    )
    retry.add_argument("--channel", help="every retryable delivery of this channel")
    retry.add_argument(
        "--state",
        choices=RETRYABLE,
        help=f"with --channel: only those in this state (one of: {', '.join(RETRYABLE)})",
    )
    remote.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"notifierctl: {exc}", file=sys.stderr)
        return 2
    if args.command in ("send", "job"):
        return remote.run(args, settings)
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
            if "nodes" in result:  # a daemon older than the hosts' view has none
                print(f"\nhosts: {len(result['nodes'])}")
                print(table(HOST_COLUMNS, [_host_row(n) for n in result["nodes"]]))
        return 0
    if command == "nodes":
        result = call(socket_path, "nodes")
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            print(table(NODE_COLUMNS, [_node_row(n) for n in result["nodes"]]))
        return 0
    if command in ("drain", "undrain"):
        print(_drained_line(call(socket_path, command)))
        return 0
    if command in ("pause", "resume"):
        call(socket_path, command)
        print("paused" if command == "pause" else "resumed")
        return 0
    if command in ("stop", "start"):
        result = call(socket_path, command, {"channel": args.channel})
        if result.get("kept_across_restarts"):
            print(
                f"{result['channel']}: stopped; it stays stopped across restarts of notifierd "
                f"until `notifierctl start {result['channel']}`"
            )
        else:
            print(f"{result['channel']}: {result['state']}")
        return 0
    if command == "jobs":
        return _jobs(args, socket_path)
    if command == "retry":
        return _retry(args, socket_path)
    raise AssertionError(command)


def _jobs(args: argparse.Namespace, socket_path: Path) -> int:
    filters = {"channel": args.channel, "state": args.state, "limit": args.limit}
    rows = call(socket_path, "deliveries" if args.deliveries else "jobs", filters)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif args.deliveries:
        print(table(DELIVERY_COLUMNS, [_delivery_row(r) for r in rows]))
    else:
        print(table(JOB_COLUMNS, [_job_row(r) for r in rows]))
    return 0


def _retry(args: argparse.Namespace, socket_path: Path) -> int:
    if args.ids and (args.channel or args.state):
        print("notifierctl: retry: give ids, or --channel (and --state), not both", file=sys.stderr)
        return 2
    if args.ids:
        kind = "deliveries" if args.delivery else "jobs"
        result = call(socket_path, "retry", {kind: args.ids})
        lines = [
            _retried_line(r, "delivery" if args.delivery else "job") for r in result["results"]
        ]
        for ok, line in lines:
            print(line, file=sys.stdout if ok else sys.stderr)
        return 0 if all(ok for ok, _ in lines) else 1
    if not args.channel:
        print(
            "notifierctl: retry: give job ids, --delivery and delivery ids, "
            "or --channel (and --state)",
            file=sys.stderr,
        )
        return 2
    result = call(socket_path, "retry", {"channel": args.channel, "state": args.state})
    what = f"{args.state} deliveries" if args.state else "dead, failed or expired deliveries"
    if not result["requeued"]:
        print(f"{args.channel}: nothing to retry (no {what})", file=sys.stderr)
        return 1
    print(f"{args.channel}: requeued {result['requeued']} {what}")
    return 0


def _retried_line(result: dict[str, Any], kind: str) -> tuple[bool, str]:
    """(whether something was retried, the line that says what happened to one id)."""
    name = f"{kind} {result['id']}"
    if not result["found"]:
        return False, f"{name}: no such {kind} (unknown, or pruned from the journal)"
    untouched = ", ".join(f"{n} {state}" for state, n in sorted(result["untouched"].items()))
    if not result["requeued"]:
        return False, f"{name}: nothing to retry ({untouched or 'no deliveries'})"
    line = f"{name}: requeued {result['requeued']} deliveries"
    return True, f"{line} (left as they are: {untouched})" if untouched else line


def _status_row(channel: dict[str, Any]) -> list[str]:
    row = dict(channel)
    row["pids"] = ",".join(str(pid) for pid in channel["pids"]) or "-"
    row["last_error"] = channel["last_error"] or ""
    return [str(row[column]) for column in STATUS_COLUMNS]


def _node_name(node: dict[str, Any]) -> str:
    return f"{node['node_id']} (this host)" if node["this_host"] else str(node["node_id"])


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _host_row(node: dict[str, Any]) -> list[str]:
    runtime = node["runtime"]
    states = runtime.get("channels", {})
    return [
        _node_name(node),
        f"{node['heartbeat_age']:.1f} s ago",
        str(runtime.get("pid", "?")),
        _yes(node["draining"]),
        str(node["leases"]),
        ",".join(node.get("rate_keys", ())) or "-",
        ", ".join(f"{name} {state}" for name, state in sorted(states.items())) or "-",
    ]


def _node_row(node: dict[str, Any]) -> list[str]:
    return [
        _node_name(node),
        str(node["runtime"].get("version", "?")),
        iso(node["started_at"]),
        f"{node['heartbeat_age']:.1f} s ago",
        _yes(node["draining"]),
        _yes(node["leader"]),
        str(node["leases"]),
    ]


def _drained_line(result: dict[str, Any]) -> str:
    node = result["node_id"]
    if not result["draining"]:
        return f"{node}: claims deliveries again"
    held = "what it holds" if result["leases"] is None else f"the {result['leases']} it holds"
    return (
        f"{node}: draining: it claims no new deliveries and finishes {held}; stop it once "
        "`notifierctl nodes` shows it holding none (0 leases), or `notifierctl undrain`"
    )


def _job_row(job: dict[str, Any]) -> list[str]:
    states = ", ".join(f"{n} {state}" for state, n in sorted(job["states"].items()))
    return [
        str(job["id"]),
        job["channel"],
        iso(job["created_at"]),
        iso(job["updated_at"]),
        states,
        job["last_error"] or "",
    ]


def _delivery_row(delivery: dict[str, Any]) -> list[str]:
    row = dict(delivery)
    row["updated"] = iso(delivery["updated_at"])
    row["last_error"] = delivery["last_error"] or ""
    return [str(row[column]) for column in DELIVERY_COLUMNS]


def table(columns: Sequence[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    raise SystemExit(main())
