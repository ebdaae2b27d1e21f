"""The sd_notify protocol client."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from pathlib import Path

import structlog

from notifierd.systemd import Notifier, stderr_is_journal


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


def fill(path: Path) -> None:
    """Send datagrams to `path` until its receive queue takes no more."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sender.sendto(b"X" * 1024, str(path))


def test_a_full_socket_drops_the_message_with_one_warning() -> None:
    path = Path(tempfile.mkdtemp(dir="/tmp")) / "n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        fill(path)
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        with structlog.testing.capture_logs() as logs:
            # In a thread: a blocking send would wait for a reader forever.
            def send() -> None:
                for _ in range(20):
                    notifier.notify("WATCHDOG=1")

            sending = threading.Thread(target=send, daemon=True)
            sending.start()
            sending.join(5)
            assert not sending.is_alive()
        assert [log["event"] for log in logs] == ["systemd.notify_failed"]
        assert logs[0]["dropped"] == "WATCHDOG"


def test_stderr_is_the_journal_only_if_the_stream_matches(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as stream:
        found = os.fstat(stream.fileno())
        matching = {"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"}
        assert stderr_is_journal(matching, stream.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{found.st_dev}:1"}, stream.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, stream.fileno())
        assert not stderr_is_journal({}, stream.fileno())
