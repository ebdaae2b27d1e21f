"""The sd_notify protocol client."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from notifierd.systemd import Notifier


def test_disabled_without_notify_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.notify("READY=1")  # nothing to send to, and no error


def test_sends_one_datagram_per_notify() -> None:
    path = Path(tempfile.mkdtemp(dir="/tmp")) / "n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        Notifier({"NOTIFY_SOCKET": str(path)}).notify("READY=1", "STATUS=up")
        assert listener.recv(100) == b"READY=1\nSTATUS=up"


def test_abstract_namespace_socket() -> None:
    name = f"notifierd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        Notifier({"NOTIFY_SOCKET": "@" + name}).notify("WATCHDOG=1")
        assert listener.recv(100) == b"WATCHDOG=1"


def test_a_broken_socket_is_not_fatal() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    notifier.notify("READY=1")
    notifier.notify("STOPPING=1")


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_seconds == 15.0
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_seconds is None
    assert Notifier({"WATCHDOG_USEC": "abc"}).watchdog_seconds is None
    assert Notifier({}).watchdog_seconds is None
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_seconds == 1.0
    other = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    assert Notifier(other).watchdog_seconds is None
