"""The blocking client notifierctl uses."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from notifierd.control.protocol import MAX_LINE, ProtocolError, decode, encode


class NotRunning(Exception):
    """No daemon answers on the socket."""


class CommandFailed(Exception):
    """The daemon answered with an error."""


def call(
    path: Path, command: str, args: dict[str, Any] | None = None, timeout: float = 30.0
) -> Any:
    """Send one command and return its result."""
    if not path.exists():
        raise NotRunning(f"notifierd is not running (no socket at {path})")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        try:
            connection.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            raise NotRunning(f"notifierd is not running (nothing answers at {path})") from None
        connection.sendall(encode({"command": command, "args": args or {}}))
        answer = decode(_read_line(connection))
    except PermissionError:
        raise CommandFailed(f"permission denied on {path}") from None
    except (OSError, ProtocolError) as exc:
        raise CommandFailed(f"no valid answer from notifierd at {path}: {exc}") from None
    finally:
        connection.close()
    if not answer.get("ok"):
        raise CommandFailed(str(answer.get("error", "unknown error")))
    return answer.get("result")


def _read_line(connection: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_LINE:
            break
    return b"".join(chunks)
