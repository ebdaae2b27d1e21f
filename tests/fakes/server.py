"""Run an aiohttp application on 127.0.0.1 in a background thread with its own event loop, so
that synchronous code (a worker's `send`) and other processes (a real daemon) can talk to it.

Also the pieces every HTTP fake shares: what a request looked like (`RecordedRequest`), the
faults any fake can inject (`Raw`, `Slow`, `Reset`, `Huge`), and `free_port`. (To poll for a
condition: `tests.harness.wait_for`.)

    with run_app_in_thread(app) as base_url:
        requests.get(f"{base_url}/ping")
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


class ThreadedServer:
    """An aiohttp app served on a free port of 127.0.0.1 from a daemon thread.

    `start()` returns the base URL (`http://127.0.0.1:PORT`); `stop()` closes the server, the
    open connections, pending handlers and the loop, so nothing leaks into the next test."""

    def __init__(
        self, app: web.Application, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.host = host
        #: Serve https with this context (its certificate and, if it asks, clients').
        self.tls = tls
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-server", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._setup(), loop).result(timeout=10)
        return self.base_url

    async def _setup(self) -> int:
        # handler_cancellation: a handler whose client went away (a timed-out `Slow`) is
        # cancelled instead of running on; shutdown_timeout bounds how long stop() waits.
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.tls)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    def stop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._teardown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    async def _teardown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def run_app_in_thread(app: web.Application) -> Iterator[str]:
    """Serve `app` on a free port of 127.0.0.1 for the duration of the block; yields the base
    URL."""
    server = ThreadedServer(app)
    base_url = server.start()
    try:
        yield base_url
    finally:
        server.stop()


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on: for a server that cannot bind port 0 (the
    SMTP fake), or for a connection that is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. `params` merges the query string and a form or
    JSON object body (the body wins), as the real services read them."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    #: When it arrived (`time.monotonic()` of the test process), to measure pauses between.
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)


async def record(request: web.Request) -> RecordedRequest:
    body = await request.read()
    query = dict(request.query)
    params = dict(query)
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif content_type == "application/json" and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update({key: str(value) for key, value in decoded.items()})
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=query,
        headers=dict(request.headers),
        body=body,
        params=params,
    )


# --- Faults every fake can inject -------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Answer exactly this (an HTML error page, a non-JSON 200, ...)."""

    status: int
    body: str = ""
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """Answer `then` only after `seconds` (set it past the client's timeout). `then` is the
    fake's own reply, so with `Slow(…, then=<accept>)` the message is recorded as sent although
    the client gave up: a retry then duplicates it, as with a real remote."""

    seconds: float
    then: object = None


@dataclass(frozen=True)
class Reset:
    """Close the connection with a TCP reset instead of answering."""


@dataclass(frozen=True)
class Huge:
    """Answer 200 with a body of `size` bytes, streamed in chunks without a Content-Length
    (never held whole in the fake's memory); the stream ends when the client hangs up."""

    size: int
    chunk: int = 64 * 1024


async def stream_huge(request: web.Request, reply: Huge) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b"x" * reply.chunk
    sent = 0
    try:
        while sent < reply.size:
            await response.write(chunk[: reply.size - sent])
            sent += reply.chunk
    except (ConnectionError, RuntimeError):
        return response  # the client stopped reading, as it should
    await response.write_eof()
    return response


def raw_response(reply: Raw) -> web.Response:
    return web.Response(
        status=reply.status,
        text=reply.body,
        content_type=reply.content_type,
        headers=reply.headers,
    )


def reset_connection(request: web.Request) -> web.Response:
    """Abort the connection with an RST (SO_LINGER 0). The returned response is never sent."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response(status=500)


async def answer(
    request: web.Request,
    reply: object,
    delay: float,
    own: web.StreamResponse | None,
    kind: str,
) -> web.StreamResponse:
    """The end every fake's handler shares: `own` is the fake's response to a reply of its own
    kind (None when `reply` is not one); a `Raw` reply is sent as it is, a `Reset` aborts the
    connection, a `Huge` streams its body, anything else is a mistake in the test. The
    response leaves after `delay`."""
    response: web.StreamResponse
    if own is not None:
        response = own
    elif isinstance(reply, Raw):
        response = raw_response(reply)
    elif isinstance(reply, Reset):
        return reset_connection(request)
    elif isinstance(reply, Huge):
        return await stream_huge(request, reply)
    else:
        raise TypeError(f"not a {kind} reply: {reply!r}")
    if delay:
        await asyncio.sleep(delay)
    return response


def unwrap_slow(reply: object, default: object) -> tuple[float, object]:
    """The delay to wait before answering and the reply to answer (`default` for a bare
    `Slow`). The fake acts on the reply (records the message) before it waits."""
    if isinstance(reply, Slow):
        return reply.seconds, default if reply.then is None else reply.then
    return 0.0, reply
