"""A fake Gotify server: `POST /message` with an application token (`X-Gotify-Key`, or the
`token` query parameter), answered as Gotify does, errors as `{"error", "errorCode",
"errorDescription"}`.

    fake = FakeGotify()
    fake.script(Raw(429, "", headers={"Retry-After": "2"}))   # the next answers, in order
    fake.messages                                             # the messages stored
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

APP_TOKEN = "AGr0bKq7n.XvT9dW"
UNAUTHORIZED = "you need to provide a valid access token or user credentials to access this api"
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


@dataclass(frozen=True)
class Message:
    message: str
    title: str | None
    priority: int
    extras: dict[str, Any] | None


def gotify_error(status: int, description: str) -> Raw:
    body = {"error": _REASONS.get(status, "Error"), "errorCode": status}
    body["errorDescription"] = description
    return Raw(status, json.dumps(body), "application/json")


class FakeGotify(ThreadedServer):
    def __init__(self) -> None:
        self.token = APP_TOKEN
        self.requests: list[RecordedRequest] = []
        self.messages: list[Message] = []
        self._replies: deque[object] = deque()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/message", self._message)
        super().__init__(app)

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order."""
        self._replies.extend(replies)

    async def _message(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if reply is not None:
            return await answer(request, reply, delay, None, "gotify")
        return await answer(request, None, delay, self._accept(recorded), "gotify")

    def _accept(self, request: RecordedRequest) -> web.Response:
        key = request.headers.get("X-Gotify-Key") or request.query.get("token")
        if key != self.token:
            return _error(gotify_error(401, UNAUTHORIZED))
        payload = request.json()
        if not payload.get("message"):
            return _error(gotify_error(400, "Field 'message' is required"))
        message = Message(
            payload["message"],
            payload.get("title"),
            payload.get("priority", 0),
            payload.get("extras"),
        )
        self.messages.append(message)
        body = {"id": next(self._ids), "appid": 1, **payload, "date": "2026-11-29T12:00:00Z"}
        return web.Response(text=json.dumps(body), content_type="application/json")


def _error(reply: Raw) -> web.Response:
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")
