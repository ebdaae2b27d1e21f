"""A fake HTTP endpoint for the `webhook` worker (and the example plugin's `example-webhook`):
any method on any path, records each request, checks a bearer token or HTTP Basic login when
it is given one, and answers as scripted. Served over https with `tls` (a server context,
which may also ask for a client certificate).

    fake = FakeWebhook(token="s3cret")     # or login=("user", "password"), or neither
    fake.script(Raw(503, "busy"), Raw(429, "", headers={"Retry-After": "3"}))  # next answers
    fake.ok = Raw(200, '{"ok": true}', "application/json")   # the answer once accepted
    fake.latency = 0.1      # every answer leaves 0.1 s after the request arrived (and recorded)
    fake.accepted   # the requests answered 2xx, as received
    fake.payloads   # the JSON bodies among them
    fake.requests   # every request, as received

A request with the wrong credentials is answered 401 `{"error": "unauthorized"}` (a scripted
answer is kept for the next request that has them).
"""

from __future__ import annotations

import base64
import json
import ssl
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
UNAUTHORIZED = Raw(401, json.dumps({"error": "unauthorized"}), "application/json")


class FakeWebhook(ThreadedServer):
    def __init__(
        self,
        token: str | None = None,
        login: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.token = token
        self.login = login
        self.ok: Raw = OK
        self.latency = 0.0
        self.requests: list[RecordedRequest] = []
        self.accepted: list[RecordedRequest] = []
        self.payloads: list[Any] = []
        self._replies: deque[object] = deque()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._receive)
        super().__init__(app, tls=tls)

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order; then
        `ok`."""
        self._replies.extend(replies)

    def forms(self) -> list[dict[str, str]]:
        """The form bodies (and query) of the accepted requests."""
        return [request.params for request in self.accepted]

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        if not self._authorized(recorded.headers.get("Authorization")):
            return await answer(request, UNAUTHORIZED, 0.0, None, "webhook")
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else self.ok, self.ok)
        if isinstance(reply, Raw) and 200 <= reply.status < 300:
            self.accepted.append(recorded)
            if recorded.content_type == "application/json":
                self.payloads.append(recorded.json())
        return await answer(request, reply, delay + self.latency, None, "webhook")

    def _authorized(self, authorization: str | None) -> bool:
        if self.token is not None:
            return authorization == f"Bearer {self.token}"
        if self.login is not None:
            expected = base64.b64encode(":".join(self.login).encode()).decode()
            return authorization == f"Basic {expected}"
        return True
