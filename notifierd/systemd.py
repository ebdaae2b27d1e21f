"""systemd without a library: the notify protocol (sd_notify(3)), datagrams to $NOTIFY_SOCKET,
and whether stderr is the journal ($JOURNAL_STREAM, sd-daemon(3)).

READY=1 once the API and the workers are up, STATUS= lines, STOPPING=1 on shutdown, and
WATCHDOG=1 every half of $WATCHDOG_USEC while the event loop runs. A datagram is sent from the
event loop and never waits: one the socket cannot take now is dropped.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("notifierd.systemd")


class Notifier:
    """Sends notifications when started by systemd (Type=notify); does nothing otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        # A leading "@" names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds = _watchdog_seconds(environ)
        self._failing = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *lines: str) -> None:
        if not self._address:
            return
        message = "\n".join(lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Non-blocking: a full socket (nobody reads it) would otherwise stop the event
                # loop, the API and signal handling with it, until it is read.
                sock.setblocking(False)
                sock.sendto(message, self._address)
        except OSError as exc:
            # One warning for a run of failures: a watchdog ping every few seconds to a broken
            # socket would otherwise flood the log.
            if not self._failing:
                self._failing = True
                log.warning(
                    "systemd.notify_failed",
                    error=str(exc),
                    dropped=lines[0].split("=", 1)[0],
                    hint="notifications are dropped until the socket takes them again",
                )
        else:
            self._failing = False


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True if `fd` is the stream systemd connected to the journal: $JOURNAL_STREAM holds its
    device and inode (a child that inherited the variable but not the stream is not fooled)."""
    environ = os.environ if environ is None else environ
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        found = os.fstat(fd)
        return (found.st_dev, found.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """Half the watchdog interval, when the watchdog is on and meant for this process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    with contextlib.suppress(ValueError):
        value = int(usec)
        if value > 0:
            return value / 2 / 1_000_000
    return None
