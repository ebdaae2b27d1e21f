"""`notifierctl send` and `notifierctl job`: the HTTP API from a script or a cron job, over
HTTP rather than the control socket, so they work from another host too.

The daemon's URL is `--url`, else `NOTIFIERD_URL`, else `http://HOST:PORT` from the daemon's
own settings (`NOTIFIERD_HOST`, `NOTIFIERD_PORT`). The token is the first one of `--token-file`,
else of the daemon's `NOTIFIERD_API_TOKENS_FILE`, else of `NOTIFIERD_API_TOKENS`; none is sent
when none is set.

Exit codes (`EXIT_*` below): 0 accepted (or found); 1 refused by the daemon (4xx: the server's
description is printed); 2 bad usage (a token file that cannot be read, stdin that is not
UTF-8); 3 the daemon cannot be reached; 4 the daemon is unavailable (503: maintenance, or its
database lost), worth trying again later; 5 any other answer (a 5xx).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from notifierd.errors import ConfigError
from notifierd.settings import Settings, read_tokens_file

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAVAILABLE = 4
EXIT_SERVER_ERROR = 5
TIMEOUT = 30.0
UNAVAILABLE = "the daemon is in maintenance or stopping; try again later"
#: Addresses a daemon listens on that a client cannot connect to as they are.
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class Usage(Exception):
    """A problem with the command's own arguments or inputs: exit 2."""


def add_parsers(commands: Any) -> None:
    """`send` and `job` on notifierctl's subcommand parser."""
    send = commands.add_parser(
        "send",
        help="send a message over the HTTP API; prints the job id",
        description="POST MESSAGE (or stdin, with '-' or no MESSAGE) to /api/send/CHANNEL. "
        "Exit codes: 0 accepted, 1 refused (the daemon's reason is printed), 2 bad usage, "
        "3 cannot connect, 4 unavailable (503), 5 another error.",
    )
    send.add_argument("channel")
    send.add_argument("message", nargs="?", default="-", help="the text; '-' reads stdin (UTF-8)")
    send.add_argument("--delay", type=int, help="seconds before the first delivery")
    _add_connection_flags(send)
    job = commands.add_parser(
        "job",
        help="a job's deliveries, their states and each attempt, over the HTTP API",
        description="GET /api/jobs/ID. Exit codes as for send.",
    )
    job.add_argument("job_id", metavar="ID")
    job.add_argument("--json", action="store_true", help="print JSON")
    _add_connection_flags(job)


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="the daemon's base URL (env NOTIFIERD_URL; default: http://HOST:PORT)"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="a file of API tokens, the first one is sent (default: NOTIFIERD_API_TOKENS_FILE)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        base, token = _base_url(args, settings), _token(args, settings)
        if args.command == "send":
            return _send(args, base, token)
        return _job(args, base, token)
    except Usage as exc:
        print(f"notifierctl: {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except requests.RequestException as exc:
        print(f"notifierctl: {args.command}: cannot reach the daemon: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _send(args: argparse.Namespace, base: str, token: str | None) -> int:
    message = _stdin_text() if args.message == "-" else args.message
    fields: dict[str, Any] = {"message": message}
    if args.delay is not None:
        fields["delay"] = args.delay
    response = requests.post(
        f"{base}/api/send/{quote(args.channel, safe='')}",
        json=fields,
        headers=_headers(token),
        timeout=TIMEOUT,
    )
    if response.status_code == 204:
        print(response.headers.get("X-Job-Id", ""))
        return EXIT_OK
    return _failed(args.command, response)


def _job(args: argparse.Namespace, base: str, token: str | None) -> int:
    response = requests.get(
        f"{base}/api/jobs/{quote(args.job_id, safe='')}",
        headers=_headers(token),
        timeout=TIMEOUT,
    )
    if response.status_code != 200:
        return _failed(args.command, response)
    job = response.json()
    if args.json:
        print(json.dumps(job, indent=2, ensure_ascii=False))
    else:
        print(job_text(job))
    return EXIT_OK


def job_text(job: dict[str, Any]) -> str:
    """A job as a person reads it: each delivery's state, then one line per attempt."""
    lines = [f"job {job['id']}  channel {job['channel']}  created {job['created_at']}"]
    for delivery in job["deliveries"]:
        recipient = f" to {delivery['recipient']}" if delivery["recipient"] else ""
        lines.append(
            f"delivery {delivery['id']}{recipient}: {delivery['state']}, "
            f"{delivery['attempts']} attempt(s), updated {delivery['updated_at']}"
        )
        for attempt in delivery["history"]:
            error = f": {attempt['error']}" if attempt["error"] else ""
            lines.append(
                f"  attempt {attempt['attempt']} {attempt['finished_at']} {attempt['outcome']} "
                f"({attempt['duration_ms']} ms){error}"
            )
    return "\n".join(lines)


def _failed(command: str, response: requests.Response) -> int:
    try:
        error = response.json()
        reason = f"{error['code']}: {error['description']}"
    except (ValueError, KeyError, TypeError):
        # The maintenance 503 has no body.
        reason = (
            UNAVAILABLE if response.status_code == 503 else response.reason or "no reason given"
        )
    print(f"notifierctl: {command}: HTTP {response.status_code}: {reason}", file=sys.stderr)
    if response.status_code == 503:
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED if 400 <= response.status_code < 500 else EXIT_SERVER_ERROR


def _stdin_text() -> str:
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Usage(f"the message on stdin is not valid UTF-8: {exc}") from None


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _base_url(args: argparse.Namespace, settings: Settings) -> str:
    url = args.url or os.environ.get("NOTIFIERD_URL")
    if url:
        return str(url).rstrip("/")
    host = ANY_ADDRESS.get(settings.host, settings.host)
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name
    return f"http://{host}:{settings.port}"


def _token(args: argparse.Namespace, settings: Settings) -> str | None:
    path = args.token_file or settings.api_tokens_file
    if path is not None:
        try:
            return read_tokens_file(path)[0]
        except ConfigError as exc:
            raise Usage(str(exc)) from None
    return settings.api_tokens[0] if settings.api_tokens else None
