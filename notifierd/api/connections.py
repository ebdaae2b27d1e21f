"""Bounds on the HTTP API's connections, so that slow and idle clients cannot starve intake.

A request's head must arrive within the head timeout of its first byte (aiohttp has no such
timeout: a client trickling a byte now and then would hold its connection for ever); a sweep
once a second closes the connections that are late.

Every connection is counted from accept to close. When a new one takes the count over the
limit, the connections idle the longest are closed first: those between two requests, or that
never sent a whole request head (a half-open or trickling client). A connection whose request is
being handled is never chosen. The limit stays below the process's file-descriptor limit, so
that accepting does not fail for lack of descriptors while idle connections could make room.

Connections are accepted here (`Acceptor`), not by the event loop's server: uvloop answers an
accept that fails for lack of descriptors by accepting and closing whatever waits, or by
closing the listening socket for good, and tells no one. Here such a failure is a rate-limited
warning, idle connections are closed to make room, and accepting resumes.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = structlog.get_logger("notifierd.api")

#: Descriptors kept for everything but HTTP connections: the database and its journal, the
#: log files, the control socket and its clients, the event loop, the thread pools...
RESERVED_DESCRIPTORS = 64
#: ... and for each worker process: its job queue, result pipe, sentinel and shared values.
DESCRIPTORS_PER_WORKER = 8
MIN_CONNECTIONS = 16
SHED_ON_EMFILE = 16  # idle connections closed when an accept failed for lack of descriptors
ACCEPT_BATCH = 128  # accepts per readiness of the listening socket, as asyncio's server does
ACCEPT_RETRY_SECONDS = 0.5  # when no connection could be closed to make room
SWEEP_SECONDS = 1.0  # how often late request heads are looked for
LOG_INTERVAL_SECONDS = 10.0
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (systemd's LimitNOFILE sets both);
    returns the (soft, hard) limits in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # No limit at all (not on Linux): the kernel's own ceiling applies; ask for a generous one.
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("notifierd.descriptor_limit_kept", soft=soft, hard=hard, error=str(exc))
    return soft, hard


def connection_limit(wanted: int, descriptors: int, workers: int) -> int:
    """At most `wanted` connections, and no more than the descriptors left for them."""
    spare = descriptors - RESERVED_DESCRIPTORS - DESCRIPTORS_PER_WORKER * workers
    return max(MIN_CONNECTIONS, min(wanted, spare))


class RateLimitedLine:
    """A warning written at most once per interval, with how often it was held back."""

    def __init__(self, event: str, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self._event = event
        self._interval = interval
        self._next = 0.0
        self._held = 0

    def warning(self, **fields: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        log.warning(self._event, **fields, repeated=self._held)
        self._held = 0
        self._next = now + self._interval


class _Tracked(asyncio.Protocol):
    """Stands between the transport and aiohttp's protocol to count the connection."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self.transport: asyncio.BaseTransport | None = None
        self.busy = 0  # requests being handled
        self.idle_since = time.monotonic()
        #: When the first byte of a request head came; None between requests.
        self.head_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._inner.connection_made(transport)
        self._guard.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.closed(self)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_since is None and not self.busy:
            self.head_since = time.monotonic()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ConnectionGuard:
    """Counts the API's connections, closes the longest idle ones beyond `limit` and those
    whose request head takes longer than `head_timeout` seconds."""

    def __init__(self, limit: int, head_timeout: float) -> None:
        self.limit = limit
        self.head_timeout = head_timeout
        self._open: dict[asyncio.BaseTransport, _Tracked] = {}
        self._full_line = RateLimitedLine("http.connections_full")
        self._late_line = RateLimitedLine("http.slow_request_head")
        self._sweep: asyncio.TimerHandle | None = None

    def start_sweeping(self) -> None:
        self._sweep = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep_late)

    def stop_sweeping(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _sweep_late(self) -> None:
        deadline = time.monotonic() - self.head_timeout
        late = [
            c for c in self._open.values() if c.head_since is not None and c.head_since < deadline
        ]
        for connection in late:
            self.closed(connection)
            connection.close()
        if late:
            self._late_line.warning(closed=len(late), head_timeout=self.head_timeout)
        self.start_sweeping()

    def __len__(self) -> int:
        return len(self._open)

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], _Tracked]:
        return lambda: _Tracked(make(), self)

    def make_room(self, pending: int) -> bool:
        """Whether one more connection may be accepted besides the open ones and `pending`
        (accepted, not yet open); closes the longest idle connections to make room."""
        excess = len(self._open) + pending + 1 - self.limit
        if excess <= 0:
            return True
        closed = self.shed(excess)
        self._full_line.warning(
            limit=self.limit,
            closed_idle=closed,
            hint="raise --max-connections (and LimitNOFILE), or look for idle clients",
        )
        return closed == excess

    def opened(self, connection: _Tracked) -> None:
        assert connection.transport is not None
        self._open[connection.transport] = connection

    def closed(self, connection: _Tracked) -> None:
        if connection.transport is not None:
            self._open.pop(connection.transport, None)

    def shed(self, count: int) -> int:
        """Close up to `count` of the longest idle connections; returns how many."""
        closed = 0
        for _ in range(count):
            idle = [c for c in self._open.values() if not c.busy]
            if not idle:
                break
            victim = min(idle, key=lambda c: c.idle_since)
            self.closed(victim)  # counted out now: the transport reports its loss later
            victim.close()
            closed += 1
        return closed

    def middleware(self) -> Middleware:
        """Marks a connection busy while one of its requests is handled."""

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            transport = request.transport
            connection = self._open.get(transport) if transport is not None else None
            if connection is None:
                return await handler(request)
            connection.busy += 1
            connection.head_since = None
            try:
                return await handler(request)
            finally:
                connection.busy -= 1
                connection.idle_since = time.monotonic()

        return track


class Acceptor:
    """Accepts the connections of one listening socket and hands them to the event loop."""

    def __init__(
        self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], guard: ConnectionGuard
    ) -> None:
        self._sock = sock
        self._factory = factory
        self._guard = guard
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task[Any]] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._descriptors_line = RateLimitedLine("http.out_of_descriptors")
        sock.setblocking(False)

    def start(self) -> None:
        self._retry = None
        self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if not self._guard.make_room(len(self._pending)):
                self._pause()  # every connection is in a request: the rest wait in the backlog
                return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._failed(exc)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
            self._pending.add(task)
            task.add_done_callback(self._connected)

    def _failed(self, exc: OSError) -> None:
        shed = self._guard.shed(SHED_ON_EMFILE) if exc.errno in OUT_OF_DESCRIPTORS else 0
        self._descriptors_line.warning(
            error=str(exc),
            connections=len(self._guard),
            closed_idle=shed,
            descriptor_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            hint="raise LimitNOFILE (ulimit -n) or lower --max-connections",
        )
        if not shed:
            self._pause()

    def _pause(self) -> None:
        # The waiting clients stay in the backlog; try again shortly rather than spin on a
        # socket that stays readable.
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY_SECONDS, self.start)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("http.connection_failed", error=str(task.exception()))
