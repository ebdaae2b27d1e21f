"""The systemd notify protocol (sd_notify(3)) without a library: datagrams to $NOTIFY_SOCKET.

READY=1 once the API and the workers are up, STATUS= lines, STOPPING=1 on shutdown, and
WATCHDOG=1 every half of $WATCHDOG_USEC while the event loop runs.
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
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *lines: str) -> None:
        if not self._address:
            return
        message = "\n".join(lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            if not self._warned:  # once: a broken socket would otherwise flood the log
                self._warned = True
                log.warning("systemd.notify_failed", error=str(exc))


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
