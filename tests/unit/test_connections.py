"""The HTTP connections' bounds: which connections make room, and how many fit."""

from __future__ import annotations

import asyncio

from notifierd.api.connections import (
    DESCRIPTORS_PER_WORKER,
    MIN_CONNECTIONS,
    RESERVED_DESCRIPTORS,
    ConnectionGuard,
    connection_limit,
)


class FakeTransport(asyncio.Transport):
    def __init__(self, guard: ConnectionGuard) -> None:
        super().__init__()
        self.closed = False
        self.closed_event = asyncio.Event()
        self._connection = guard.protocol_factory(asyncio.Protocol)()
        self._connection.connection_made(self)

    def receive(self, data: bytes) -> None:
        self._connection.data_received(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.closed_event.set()
            self._connection.connection_lost(None)


def _open(guard: ConnectionGuard, count: int) -> list[FakeTransport]:
    return [FakeTransport(guard) for _ in range(count)]


def test_room_is_made_by_closing_the_longest_idle_connection() -> None:
    guard = ConnectionGuard(limit=3, head_timeout=10)
    oldest, middle, newest = _open(guard, 3)

    assert guard.make_room(pending=0)

    assert [t.closed for t in (oldest, middle, newest)] == [True, False, False]
    assert len(guard) == 2


def test_pending_connections_count_against_the_limit() -> None:
    guard = ConnectionGuard(limit=3, head_timeout=10)
    transports = _open(guard, 1)

    assert guard.make_room(pending=1)
    assert not transports[0].closed
    assert guard.make_room(pending=2)
    assert transports[0].closed


async def test_a_connection_in_a_request_is_never_closed_for_room() -> None:
    guard = ConnectionGuard(limit=2, head_timeout=10)
    busy, idle = _open(guard, 2)
    track = guard.middleware()
    release = asyncio.Event()

    class Request:
        transport = busy

    async def handler(request: object) -> object:
        await release.wait()
        return None

    in_request = asyncio.ensure_future(track(Request(), handler))  # type: ignore[arg-type]
    await asyncio.sleep(0)

    assert guard.make_room(pending=0)  # closes the idle one, though it is newer
    assert idle.closed and not busy.closed
    assert not guard.make_room(pending=1)  # only the busy one is left: no room
    assert not busy.closed
    release.set()
    await in_request


async def test_a_request_head_that_takes_too_long_is_closed() -> None:
    guard = ConnectionGuard(limit=10, head_timeout=0.2)
    trickling, silent = _open(guard, 2)
    trickling.receive(b"POST /api/send/devnull HTTP/1.1\r\n")
    guard.start_sweeping()
    try:
        await asyncio.wait_for(trickling.closed_event.wait(), 5)
    finally:
        guard.stop_sweeping()

    assert trickling.closed
    assert not silent.closed  # the keep-alive timer's business, not the head timeout's


def test_the_limit_stays_below_the_descriptors() -> None:
    spare = 256 - RESERVED_DESCRIPTORS - 2 * DESCRIPTORS_PER_WORKER
    assert connection_limit(1000, 256, workers=2) == spare
    assert connection_limit(100, 256, workers=2) == 100
    assert connection_limit(1000, 64, workers=2) == MIN_CONNECTIONS
