"""A fake Rocket.Chat's incoming webhook integrations: `POST /hooks/{id}/{token}` with
`{"text": ...}`, answered `{"success": true}` or `{"success": false, "error": ...}`, and the
429 of its API rate limiter (`error-too-many-requests`, `X-RateLimit-Reset` in milliseconds).

    fake = FakeRocketChat()
    fake.webhook_url
    fake.script(too_many_requests(2))     # the next answers, in order
    fake.messages                         # the text of each message posted
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

INTEGRATION_ID = "k8xZpWqT2cRmN4vBy"
TOKEN = "Jd7Fh2Lq9Xw4Tn6Rb3Vs8Yc1Mz5Kp0Ge"
MESSAGE_LIMIT = 5000


@dataclass(frozen=True)
class Message:
    text: str
    payload: dict[str, Any]


def failure(status: int, error: str) -> Raw:
    return Raw(status, json.dumps({"success": False, "error": error}), "application/json")


@dataclass(frozen=True)
class TooManyRequests:
    """The rate limiter's 429, its reset `wait` seconds after it is answered."""

    wait: int

    def reply(self) -> Raw:
        error = (
            "Error, too many requests. Please slow down. You must wait "
            f"{self.wait} seconds before trying this endpoint again. [error-too-many-requests]"
        )
        reset_ms = int((time.time() + self.wait) * 1000)
        headers = {
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_ms),
        }
        body = json.dumps({"success": False, "error": error})
        return Raw(429, body, "application/json", headers)


class FakeRocketChat(ThreadedServer):
    def __init__(self) -> None:
        self.token = TOKEN
        self.requests: list[RecordedRequest] = []
        self.messages: list[Message] = []
        self._replies: deque[object] = deque()
        app = web.Application()
        app.router.add_post("/hooks/{id}/{token}", self._hook)
        super().__init__(app)

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/hooks/{INTEGRATION_ID}/{TOKEN}"

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`, `TooManyRequests`)."""
        self._replies.extend(replies)

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if isinstance(reply, TooManyRequests):
            reply = reply.reply()
        if reply is not None:
            return await answer(request, reply, delay, None, "rocketchat")
        own = self._accept(request.match_info["id"], request.match_info["token"], recorded)
        return await answer(request, None, delay, own, "rocketchat")

    def _accept(self, hook: str, token: str, request: RecordedRequest) -> web.Response:
        if (hook, token) != (INTEGRATION_ID, self.token):
            return _error(failure(400, "Invalid integration id or token provided."))
        payload = request.json()
        text = payload.get("text") or ""
        if len(text) > MESSAGE_LIMIT:
            return _error(failure(400, "error-message-size-exceeded"))
        self.messages.append(Message(text, payload))
        return web.Response(text=json.dumps({"success": True}), content_type="application/json")


def _error(reply: Raw) -> web.Response:
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")
