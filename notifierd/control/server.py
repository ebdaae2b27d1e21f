"""The control server in the parent: reads a request, runs the command, answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from notifierd.control.protocol import MAX_LINE, ProtocolError, decode, encode, error, ok
from notifierd.errors import NotifierdError

log = structlog.get_logger("notifierd.control")

SOCKET_MODE = 0o660
PROBE_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0  # for a request line; notifierctl sends its line at once
CLOSE_WAIT_SECONDS = 2.0  # for the clients' handlers to end on close
Command = Callable[[dict[str, Any]], Awaitable[Any]]


class CommandError(Exception):
    """A command that cannot be carried out; the message goes to the client as is."""


class SocketUnavailable(NotifierdError):
    """The socket's path is taken: a live daemon answers there, or it is no socket."""


class ControlServer:
    def __init__(
        self,
        path: Path,
        commands: dict[str, Command],
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self.path = path
        self._commands = commands
        self._read_timeout = read_timeout
        self._server: asyncio.AbstractServer | None = None
        self._owns_socket = False
        self._clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_socket()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_LINE
        )
        self._owns_socket = True
        self.path.chmod(SOCKET_MODE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # The clients' connections are closed, not their handlers cancelled: on Python 3.11
            # asyncio logs every cancelled stream handler with a traceback.
            for writer in self._clients.values():
                writer.transport.abort()
            if self._clients:
                await asyncio.wait(list(self._clients), timeout=CLOSE_WAIT_SECONDS)
            await self._server.wait_closed()
            self._server = None
        if self._owns_socket:
            self._owns_socket = False
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _remove_stale_socket(self) -> None:
        """A socket file left by a killed daemon is removed; a live daemon's is not, and
        neither is anything that is not a socket (a mistyped --socket must not delete files).
        Only a refused connection proves nobody listens: a busy daemon's full backlog or a
        permission problem must not cost it its socket."""
        if not self.path.exists():
            return
        if not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise SocketUnavailable(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(PROBE_SECONDS)
        try:
            probe.connect(str(self.path))
        except ConnectionRefusedError:
            self.path.unlink()
            return
        except OSError as exc:
            raise SocketUnavailable(f"cannot tell whether {self.path} is in use: {exc}") from None
        finally:
            probe.close()
        raise SocketUnavailable(
            f"another notifierd is running on {self.path}; give this one a --socket or "
            "--state-dir of its own"
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            async with asyncio.timeout(self._read_timeout):
                line = await reader.readline()
            answer = await self._answer(line)
            if writer.is_closing():
                return  # closed by `close`: nobody to answer
            writer.write(encode(answer))
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError, TimeoutError):
            pass  # the client is gone, or sent no line in time: nobody to answer
        finally:
            del self._clients[task]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = decode(line)
        except ProtocolError as exc:
            return error(str(exc))
        name = request.get("command")
        args = request.get("args") or {}
        command = self._commands.get(name) if isinstance(name, str) else None
        if command is None or not isinstance(args, dict):
            return error(f"unknown command {name!r}")
        try:
            return ok(await command(args))
        except CommandError as exc:
            return error(str(exc))
        except Exception as exc:
            log.exception("control.command_failed", command=name)
            return error(f"{name} failed: {exc}")
