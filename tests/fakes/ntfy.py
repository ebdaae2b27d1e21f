"""A fake ntfy server: JSON publishing (`POST /` with `topic`, `message`, ...) as ntfy answers
it, its `{"code", "http", "error", "link"}` errors, access tokens and Basic logins, and its
429 (which names no time).

    fake = FakeNtfy()
    fake.token = "tk_..."         # the one token it accepts (None: anonymous publishing)
    fake.script(ntfy_error(429, 42901, "limit reached: too many requests"))
    fake.messages                 # the messages published, as ntfy keeps them
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"
USERNAME, PASSWORD = "alerts", "Pa55-w0rd-ntfy-9f3c"
MESSAGE_BYTES = 4096


@dataclass(frozen=True)
class Message:
    topic: str
    message: str
    title: str | None
    priority: int
    tags: tuple[str, ...]


def ntfy_error(status: int, code: int, error: str, headers: dict[str, str] | None = None) -> Raw:
    body = {"code": code, "http": status, "error": error, "link": "https://ntfy.sh/docs/"}
    return Raw(status, json.dumps(body), "application/json", headers or {})


class FakeNtfy(ThreadedServer):
    def __init__(self) -> None:
        self.token: str | None = TOKEN
        self.login = (USERNAME, PASSWORD)
        self.requests: list[RecordedRequest] = []
        self.messages: list[Message] = []
        self._replies: deque[object] = deque()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/", self._publish)
        super().__init__(app)

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order."""
        self._replies.extend(replies)

    async def _publish(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if reply is not None:
            return await answer(request, reply, delay, None, "ntfy")
        return await answer(request, None, delay, self._accept(recorded), "ntfy")

    def _accept(self, request: RecordedRequest) -> web.Response:
        refused = self._check_login(request.headers.get("Authorization"))
        if refused is not None:
            return refused
        try:
            payload: dict[str, Any] = request.json()
        except ValueError:
            return _error(ntfy_error(400, 40017, "invalid request: request body must be JSON"))
        if len(str(payload.get("message", "")).encode()) > MESSAGE_BYTES:
            return _error(ntfy_error(413, 41301, "invalid request: message too large"))
        priority = payload.get("priority", 3)
        if priority not in range(1, 6):
            return _error(ntfy_error(400, 40007, "invalid request: priority invalid"))
        message = Message(
            topic=payload["topic"],
            message=payload.get("message", ""),
            title=payload.get("title"),
            priority=priority,
            tags=tuple(payload.get("tags", ())),
        )
        self.messages.append(message)
        body = {
            "id": f"msg{next(self._ids):09d}",
            "time": int(time.time()),
            "event": "message",
            "topic": message.topic,
            "message": message.message,
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    def _check_login(self, authorization: str | None) -> web.Response | None:
        if self.token is None:
            return None
        basic = base64.b64encode(":".join(self.login).encode()).decode()
        if authorization in (f"Bearer {self.token}", f"Basic {basic}"):
            return None
        if authorization is None:
            return _error(ntfy_error(403, 40301, "forbidden"))
        return _error(ntfy_error(401, 40101, "unauthorized"))


def _error(reply: Raw) -> web.Response:
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")
