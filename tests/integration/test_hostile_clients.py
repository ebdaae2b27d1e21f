"""Hostile, slow and idle HTTP clients against a real daemon: never a 5xx nor a traceback, and
intake goes on for good clients."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory

NULL_CHANNEL = 'channels:\n  devnull:\n    worker: "null"\n'
READ_TIMEOUT = 2.0
DESCRIPTORS = 256  # the hard RLIMIT_NOFILE of the daemons with few descriptors
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def daemon(make_daemon: DaemonFactory) -> Daemon:
    return make_daemon(NULL_CHANNEL, extra_args=["--read-timeout", str(READ_TIMEOUT)]).start()


def _connect(daemon: Daemon) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    client.settimeout(10)
    return client


def _exchange(daemon: Daemon, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` raw on a new connection, read until the daemon closes it."""
    with closing(_connect(daemon)) as client:
        client.sendall(data)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def _post(content_type: str, body: bytes, *extra: str) -> bytes:
    head = [
        "POST /api/send/devnull HTTP/1.1",
        "Host: localhost",
        "Connection: close",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _problems(daemon: Daemon) -> list[dict[str, Any]]:
    """Log events with a traceback, or at error level or above."""
    return [
        event
        for event in daemon.events(since_start=True)
        if "exception" in event or event.get("level") in ("error", "critical")
    ]


def _json_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body)
    assert headers["Content-Type"].startswith("application/json")
    document: dict[str, Any] = json.loads(body)
    return document


def test_a_body_that_is_not_the_gzip_it_claims_is_a_400(daemon: Daemon) -> None:
    answer = _exchange(daemon, _post(FORM, b"message=not gzip at all", "Content-Encoding: gzip"))

    assert _json_error(*answer)["code"] == "invalid_body"
    assert not _problems(daemon)
    # A body that is gzip is read as such.
    good = _exchange(daemon, _post(FORM, gzip.compress(b"message=hi"), "Content-Encoding: gzip"))
    assert good[0] == 204


@pytest.mark.parametrize("depth", [33, 100_000])
def test_json_nested_too_deep_is_a_400(daemon: Daemon, depth: int) -> None:
    body = b'{"message": "hi", "x": ' + b"[" * depth + b"]" * depth + b"}"

    answer = _exchange(daemon, _post("application/json", body))

    assert _json_error(*answer)["code"] == "json_too_deep"
    assert not _problems(daemon)


def test_json_nested_as_deep_as_allowed_is_read(daemon: Daemon) -> None:
    body = b'{"message": "hi", "x": ' + b"[" * 31 + b"]" * 31 + b"}"

    status, _, _ = _exchange(daemon, _post("application/json", body))

    assert status == 204  # 32 levels with the object itself; the unknown field is ignored


MALFORMED = {
    "request line": b"GARBAGE\x01 / HTTP/1.1\r\nHost: x\r\n\r\n",
    "request line version": b"GET /api/ping HTTP/9\r\nHost: x\r\n\r\n",
    "header": b"GET /api/ping HTTP/1.1\r\nHost: x\r\nBad Header\x00: y\r\n\r\n",
    "chunk": (
        b"POST /api/send/devnull HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nzz\r\nmessage=hi\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("what", list(MALFORMED))
def test_a_malformed_request_is_one_warning_line(daemon: Daemon, what: str) -> None:
    status, _, _ = _exchange(daemon, MALFORMED[what])

    assert status == 400
    wait_for(lambda: daemon.events("http.bad_request", since_start=True), what="the warning")
    [warning] = daemon.events("http.bad_request", since_start=True)
    assert warning["level"] == "warning"
    assert not _problems(daemon)


def test_a_chunk_broken_after_the_handler_started_reading_is_a_4xx(daemon: Daemon) -> None:
    head = (
        b"POST /api/send/devnull HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n5\r\nmessa\r\n"
    )
    with closing(_connect(daemon)) as client:
        client.sendall(head)
        assert daemon.ping().status_code == 204  # the daemon has read the head by now
        client.sendall(b"zz\r\nge=hi\r\n0\r\n\r\n")
        answer = client.recv(65536)

    # aiohttp's parser stops at the broken chunk without telling the body's reader: the
    # handler's read ends at the read timeout.
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in answer
    assert not _problems(daemon)


def test_a_client_hanging_up_mid_body_is_an_info_line(daemon: Daemon) -> None:
    with closing(_connect(daemon)) as client:
        client.sendall(_post(FORM, b"message=" + b"x" * 100)[:-50])
        assert daemon.ping().status_code == 204

    event = wait_for(
        lambda: daemon.event("api.client_disconnected", since_start=True), what="the info line"
    )
    assert event["level"] == "info"
    assert daemon.event("api.internal_error", since_start=True) is None
    assert not _problems(daemon)


def test_a_client_trickling_its_head_is_dropped_within_the_read_timeout(daemon: Daemon) -> None:
    started = time.monotonic()
    # The head is sent a byte at a time until the daemon hangs up.
    with closing(_connect(daemon)) as client, pytest.raises(OSError):
        for byte in b"POST /api/send/devnull HTTP/1.1\r\nHost: localhost\r\n" * 10:
            client.send(bytes([byte]))
            time.sleep(0.2)
            assert time.monotonic() - started < READ_TIMEOUT + 5, "still connected"
    assert time.monotonic() - started >= READ_TIMEOUT - 0.5
    warning = wait_for(lambda: daemon.event("http.slow_request_head"), what="the warning")
    assert warning["closed"] == 1


def test_a_client_trickling_its_body_gets_a_408(daemon: Daemon) -> None:
    started = time.monotonic()
    with closing(_connect(daemon)) as client:
        client.sendall(_post(FORM, b"message=" + b"x" * 100)[:-90])
        answer = client.recv(65536)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in answer
    assert READ_TIMEOUT - 0.5 <= time.monotonic() - started < READ_TIMEOUT + 5


def _limited(soft: int, hard: int) -> list[str]:
    """A command that starts bin/notifierd with RLIMIT_NOFILE (soft, hard)."""
    setup = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", setup, str(BIN / "notifierd")]


def _idle_connections(stack: ExitStack, family: int, address: Any, count: int) -> None:
    """`count` connections that send nothing (connect() does not wait for the accept)."""
    for _ in range(count):
        client = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        client.setblocking(False)
        # Refused or pending: either way it takes what the daemon gives it.
        with contextlib.suppress(OSError):
            client.connect(address)


def _descriptors(daemon: Daemon) -> int:
    assert daemon.process is not None
    return len(list(Path(f"/proc/{daemon.process.pid}/fd").iterdir()))


def _use_up_descriptors(stack: ExitStack, daemon: Daemon) -> None:
    """Idle clients of the control socket take the descriptors the daemon has left."""
    deadline = time.monotonic() + 15
    while (held := _descriptors(daemon)) < DESCRIPTORS:
        assert time.monotonic() < deadline, f"the daemon holds only {held} descriptors"
        _idle_connections(stack, socket.AF_UNIX, str(daemon.socket), 20)
        time.sleep(0.05)  # a pace for the daemon to accept them, not a wait for a condition


def _good_requests(daemon: Daemon, count: int) -> int:
    ok = 0
    for index in range(count):
        try:
            response = requests.post(
                daemon.url("/api/send/devnull"), data={"message": f"good {index}"}, timeout=10
            )
        except requests.ConnectionError:
            continue
        ok += response.status_code == 204
    return ok


@pytest.fixture
def limited_daemon(make_daemon: DaemonFactory) -> Iterator[Daemon]:
    # Soft 128: the daemon raises it to the hard limit, which it cannot pass.
    daemon = make_daemon(NULL_CHANNEL, command=_limited(128, DESCRIPTORS)).start()
    limits = daemon.event("http.limits")
    assert limits is not None
    assert limits["descriptors"] == DESCRIPTORS
    assert limits["max_connections"] < DESCRIPTORS
    yield daemon


def test_idle_connections_do_not_starve_intake_at_256_descriptors(
    limited_daemon: Daemon,
) -> None:
    daemon = limited_daemon
    with ExitStack() as stack:
        _idle_connections(stack, socket.AF_INET, ("127.0.0.1", daemon.port), 300)
        wait_for(lambda: daemon.event("http.connections_full"), what="connections full")

        assert _good_requests(daemon, 20) == 20

    assert not _problems(daemon)


def test_running_out_of_descriptors_is_logged_and_intake_goes_on(
    limited_daemon: Daemon,
) -> None:
    daemon = limited_daemon
    with ExitStack() as stack:
        _idle_connections(stack, socket.AF_INET, ("127.0.0.1", daemon.port), 300)
        wait_for(lambda: daemon.event("http.connections_full"), what="connections full")
        _use_up_descriptors(stack, daemon)

        assert _good_requests(daemon, 20) == 20

        warning = daemon.event("http.out_of_descriptors")
        assert warning is not None
        assert warning["level"] == "warning"
        assert warning["closed_idle"] > 0
        assert "Too many open files" in warning["error"]
