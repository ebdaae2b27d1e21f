"""Stopping always ends: under load, with workers that hang and must be killed, and with a client
holding a half-sent body, every stop ends within --shutdown-timeout plus a few seconds."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

SHUTDOWN_TIMEOUT = 2.0
SLACK = 5.0  # what a stop may take beyond the shutdown timeout
# 20 stops in all.
STOPS = {"SIGTERM": 6, "SIGTERM x2": 6, "SIGINT to the group": 5, "a storm of signals": 3}
HANGING = """
channels:
  devnull:
    worker: "null"
    processes: 2
    params:
      faults: [{kind: hang, match: "^hang", seconds: 600}]
"""


@pytest.fixture
def load() -> Iterator[list[Daemon]]:
    """Four clients posting to the daemon put in the list, as fast as they are answered."""
    target: list[Daemon] = []
    stop = threading.Event()

    def post() -> None:
        session = requests.Session()
        while not stop.is_set():
            if not target:
                time.sleep(0.01)
                continue
            try:
                session.post(target[0].url("/api/send/devnull"), data={"message": "x"}, timeout=5)
            except requests.RequestException:
                time.sleep(0.01)  # between two runs of the daemon

    threads = [threading.Thread(target=post, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    yield target
    stop.set()
    for thread in threads:
        thread.join(10)


def _stop(daemon: Daemon, how: str) -> None:
    assert daemon.process is not None
    if how == "SIGINT to the group":  # Ctrl-C on a terminal: the workers get it too
        os.killpg(daemon.process.pid, signal.SIGINT)
        return
    if how == "a storm of signals":  # until it has exited, through its last moments
        while daemon.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                daemon.process.send_signal(signal.SIGINT)
                time.sleep(0.01)
                daemon.process.send_signal(signal.SIGTERM)
        return
    daemon.process.send_signal(signal.SIGTERM)
    if how == "SIGTERM x2":
        wait_for(lambda: daemon.event("notifierd.stopping", since_start=True), what="draining")
        daemon.process.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("how", list(STOPS))
def test_every_stop_under_load_ends_in_time(
    make_daemon: DaemonFactory, load: list[Daemon], how: str
) -> None:
    daemon = make_daemon(HANGING, extra_args=["--shutdown-timeout", str(SHUTDOWN_TIMEOUT)])
    daemon.start()
    assert daemon.send("devnull", "hang 1").status_code == 204
    assert daemon.send("devnull", "hang 2").status_code == 204
    load.append(daemon)
    for run in range(STOPS[how]):
        if run:
            daemon.start()  # the hanging deliveries are handed out again
        wait_for(lambda: daemon.channel_status("devnull")["in_flight"] >= 1, what="in flight")
        assert daemon.process is not None
        started = time.monotonic()

        _stop(daemon, how)

        code = daemon.process.wait(SHUTDOWN_TIMEOUT + SLACK + 30)
        took = time.monotonic() - started
        assert code == 0
        assert took <= SHUTDOWN_TIMEOUT + SLACK, f"stop {run + 1} took {took:.1f} s"
        assert daemon.event("notifierd.stopped", since_start=True) is not None


def test_a_half_sent_body_does_not_hold_the_stop(make_daemon: DaemonFactory) -> None:
    # The default --read-timeout (10 s) is longer than the stop may take here.
    daemon = make_daemon('channels:\n  devnull:\n    worker: "null"\n').start()
    head = (
        "POST /api/send/devnull HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", daemon.port)) as client:
        client.sendall(head.encode() + b"message=half")
        assert daemon.ping().status_code == 204  # the daemon has read the head by now
        assert daemon.process is not None
        started = time.monotonic()

        daemon.process.send_signal(signal.SIGTERM)

        assert daemon.process.wait(60 + SLACK) == 0
    took = time.monotonic() - started
    assert took <= 5 + SLACK, f"the stop took {took:.1f} s"
