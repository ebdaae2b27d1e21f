"""A fake webhook receiver for the example `webhook` worker plugin: accepts `POST /hook` (any
path) and records the JSON bodies.

    fake = FakeWebhook()
    fake.script(Raw(503, "busy"), Raw(429, "", headers={"Retry-After": "3"}))  # next answers
    fake.payloads   # the JSON objects received and answered 2xx
    fake.requests   # every request, as received
"""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.server import (
    Raw,
    RecordedRequest,
    ThreadedServer,
    answer,
    record,
    unwrap_slow,
)

OK = Raw(204)


class FakeWebhook(ThreadedServer):
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.payloads: list[Any] = []
        self._replies: deque[object] = deque()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._receive)
        super().__init__(app)

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order; then 204."""
        self._replies.extend(replies)

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else OK, OK)
        ok = isinstance(reply, Raw) and 200 <= reply.status < 300
        if ok and recorded.content_type == "application/json":
            self.payloads.append(recorded.json())
        return await answer(request, reply, delay, None, "webhook")
