"""The HTTP API's server: aiohttp's runner with the limits that keep hostile, slow and idle
clients from starving intake or holding up a stop.

- A request's head must arrive within `read_timeout` of its first byte (`api.connections`), its
  body within `read_timeout` again (the handler, `api.app`).
- A connection that sends nothing is closed after `keepalive_timeout`: aiohttp's keep-alive
  timer, which also closes a connection that never sends a byte.
- Connections are counted and bounded (`api.connections`).
- Malformed requests (request line, headers, chunks) are one warning line, not aiohttp's
  error-level traceback (`ServerLogger`).
- On stop, connections get `SHUTDOWN_SECONDS` to finish, not aiohttp's 60 s: by then every
  request that was being handled has long been answered (the workers drained first), and what
  is left is a client holding a half-sent body.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from notifierd.api.connections import Acceptor, ConnectionGuard

log = structlog.get_logger("notifierd.api")

SHUTDOWN_SECONDS = 1.0
BACKLOG = 128  # aiohttp's default
SERVER_LOGGER = "aiohttp.server"


class ServerLogger(logging.Logger):
    """aiohttp's request handlers log through this: a request they could not parse (request
    line, headers, chunks, content encoding) becomes one warning line without a traceback,
    at whatever level aiohttp chose (a garbage method is a debug line there), and a client
    that went away an info line; anything else goes to `aiohttp.server` unchanged."""

    def __init__(self) -> None:
        super().__init__(SERVER_LOGGER)
        self.parent = logging.getLogger(SERVER_LOGGER)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        if not self._told(kwargs.get("exc_info")):
            super().debug(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        if not self._told(kwargs.get("exc_info")):
            super().error(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.error(msg, *args, **kwargs)

    @staticmethod
    def _told(exc_info: object) -> bool:
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            log.warning("http.bad_request", error=_describe(exc))
            return True
        if isinstance(exc, ConnectionError):
            log.info("http.client_disconnected", error=_describe(exc))
            return True
        return False


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = f"{type(exc).__name__}: {exc}".strip()
    if cause is not None and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return " ".join(text.split())[:500]


class HttpServer:
    """Serves `app` on host:port until `close`."""

    def __init__(
        self,
        app: web.Application,
        guard: ConnectionGuard,
        *,
        read_timeout: float,
        access_log_class: type[AbstractAccessLogger],
        keepalive_timeout: float,
    ) -> None:
        self.guard = guard
        self._runner = web.AppRunner(
            app,
            # Always installed: the class counts the responses, and writes lines if asked to.
            access_log=logging.getLogger("aiohttp.access"),
            access_log_class=access_log_class,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_SECONDS,
            keepalive_timeout=keepalive_timeout,
            # The rest of a body the handler did not read (a 503 while stopping) is read and
            # dropped for at most this long before the connection is closed.
            lingering_time=read_timeout,
            logger=ServerLogger(),
        )
        self._acceptors: list[Acceptor] = []
        self._sockets: list[socket.socket] = []

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        factory = self.guard.protocol_factory(server)
        self._sockets = await _listen(host, port)
        self._acceptors = [Acceptor(sock, factory, self.guard) for sock in self._sockets]
        for acceptor in self._acceptors:
            acceptor.start()
        self.guard.start_sweeping()

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.guard.stop_sweeping()
        for acceptor in self._acceptors:
            acceptor.close()
        self._acceptors = []
        await self._runner.cleanup()


async def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address of `host` (all on the same port when it is 0)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                sock.bind((address[0], sockets[0].getsockname()[1], *address[2:]))
            else:
                sock.bind(address)
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
