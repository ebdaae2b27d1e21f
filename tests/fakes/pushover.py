"""A fake Pushover API: `POST /1/messages.json`, form-encoded, answered as Pushover does
(`{"status": 1, "request": ...}` or `{"status": 0, "errors": [...], "<field>": "invalid"}`),
its `X-Limit-App-*` headers and its 429 when the application's monthly limit is reached.

    fake = FakePushover()
    fake.script(OverLimit(reset_in=2))    # the next answers, in order
    fake.messages                          # the notifications accepted
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

APP_TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
USER_KEY = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
MESSAGE_LIMIT = 1024
MONTHLY = 10_000


@dataclass(frozen=True)
class Notification:
    user: str
    message: str
    title: str | None
    priority: str | None


def pushover_error(status: int, *errors: str, **fields: str) -> Raw:
    body = {**fields, "errors": list(errors), "status": 0, "request": str(uuid.uuid4())}
    return Raw(status, json.dumps(body), "application/json")


@dataclass(frozen=True)
class OverLimit:
    """The 429 of an application past its monthly messages, resetting `reset_in` s after it
    is answered."""

    reset_in: float

    def reply(self) -> Raw:
        error = pushover_error(429, "application has exceeded its monthly message limit")
        headers = _limit_headers(0, time.time() + self.reset_in)
        return Raw(error.status, error.body, error.content_type, headers)


def _limit_headers(remaining: int, reset: float) -> dict[str, str]:
    return {
        "X-Limit-App-Limit": str(MONTHLY),
        "X-Limit-App-Remaining": str(remaining),
        "X-Limit-App-Reset": f"{reset:.0f}",
    }


class FakePushover(ThreadedServer):
    def __init__(self) -> None:
        self.token = APP_TOKEN
        self.user_key = USER_KEY
        self.requests: list[RecordedRequest] = []
        self.messages: list[Notification] = []
        self._replies: deque[object] = deque()
        app = web.Application()
        app.router.add_post("/1/messages.json", self._messages)
        super().__init__(app)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/1"

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`, `OverLimit`)."""
        self._replies.extend(replies)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if isinstance(reply, OverLimit):
            reply = reply.reply()
        if reply is not None:
            return await answer(request, reply, delay, None, "pushover")
        return await answer(request, None, delay, self._accept(recorded), "pushover")

    def _accept(self, request: RecordedRequest) -> web.Response:
        form = request.params
        if form.get("token") != self.token:
            return _error(pushover_error(400, "application token is invalid", token="invalid"))
        if form.get("user") != self.user_key:
            return _error(pushover_error(400, "user identifier is invalid", user="invalid"))
        text = form.get("message", "")
        if not text:
            return _error(pushover_error(400, "message cannot be blank", message="cannot be blank"))
        if len(text) > MESSAGE_LIMIT:
            return _error(pushover_error(400, "message is too long", message="is too long"))
        self.messages.append(
            Notification(form["user"], text, form.get("title"), form.get("priority"))
        )
        body = {"status": 1, "request": str(uuid.uuid4())}
        headers = _limit_headers(MONTHLY - len(self.messages), time.time() + 86400 * 30)
        return web.Response(text=json.dumps(body), content_type="application/json", headers=headers)


def _error(reply: Raw) -> web.Response:
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")
