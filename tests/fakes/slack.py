"""A fake Slack: incoming webhooks (`POST /services/{team}/{bot}/{secret}`, answered `ok` or a
plain-text error code) and the Web API's `chat.postMessage` (`POST /api/chat.postMessage` with
a bearer token, answered `{"ok": ...}`), with Slack's error shapes and rate-limit answers.

    fake = FakeSlack()
    fake.webhook_url               # the one webhook it knows
    fake.script(webhook_error(429, "rate_limited", retry_after=2))   # the next answers
    fake.messages                  # (channel, text as sent) of each message posted

`shown(text)` is the text as Slack displays it: its three escapes undone, and an unescaped
`<...>` (a link or a mention, which is what escaping prevents) kept as the marker `LINK`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

TEAM, BOT = "T0001ABCD", "B0002EFGH"
WEBHOOK_SECRET = "Xk8dN2vQp7LmR4tW9zYc3hJf"
BOT_TOKEN = "xoxb-1111111111-2222222222-Q3rT5yU7iO9pA1sD3fG5hJ7k"
CHANNEL_ID = "C0123ABCD"
TEXT_LIMIT = 40_000


@dataclass(frozen=True)
class Message:
    channel: str
    text: str


def webhook_error(status: int, code: str, retry_after: float | None = None) -> Raw:
    """An incoming webhook's error: a status and a plain-text code."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Raw(status, code, "text/plain", headers)


def api_error(error: str, status: int = 200, retry_after: float | None = None) -> Raw:
    """A Web API error: `{"ok": false, "error": ...}`, HTTP 200 but for a 429."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Raw(status, json.dumps({"ok": False, "error": error}), "application/json", headers)


def shown(text: str) -> str:
    """`text` as Slack shows it (see the module docstring)."""
    linked = re.sub(r"<[^<>]*>", "LINK", text)
    return linked.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class FakeSlack(ThreadedServer):
    def __init__(self) -> None:
        self.webhook_secret = WEBHOOK_SECRET
        self.bot_token = BOT_TOKEN
        self.requests: list[RecordedRequest] = []
        self.messages: list[Message] = []
        self._replies: deque[object] = deque()
        self._ts = itertools.count(1)
        app = web.Application()
        app.router.add_post("/services/{team}/{bot}/{secret}", self._webhook)
        app.router.add_post("/api/chat.postMessage", self._post_message)
        super().__init__(app)

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/services/{TEAM}/{BOT}/{WEBHOOK_SECRET}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order."""
        self._replies.extend(replies)

    async def _reply(
        self, request: web.Request, refusal: web.Response | None
    ) -> web.StreamResponse:
        """A scripted reply if there is one, else `refusal`, else the message accepted."""
        self.requests.append(await record(request))
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if reply is not None:
            return await answer(request, reply, delay, None, "slack")
        own = refusal if refusal is not None else self._accept(request)
        return await answer(request, None, delay, own, "slack")

    def _accept(self, request: web.Request) -> web.Response:
        payload = self.requests[-1].json()
        channel = payload.get("channel", request.match_info.get("secret", ""))
        self.messages.append(Message(str(channel), payload["text"]))
        if request.path == "/api/chat.postMessage":
            body = {"ok": True, "channel": channel, "ts": f"1700000000.{next(self._ts):06d}"}
            return web.Response(text=json.dumps(body), content_type="application/json")
        return web.Response(text="ok", content_type="text/plain")

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        return await self._reply(request, await self._check_webhook(request))

    async def _check_webhook(self, request: web.Request) -> web.Response | None:
        info = request.match_info
        if (info["team"], info["bot"]) != (TEAM, BOT):
            return web.Response(status=404, text="no_service", content_type="text/plain")
        if info["secret"] != self.webhook_secret:
            return web.Response(status=403, text="invalid_token", content_type="text/plain")
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not isinstance(payload, dict) or not payload.get("text"):
            return web.Response(status=400, text="no_text", content_type="text/plain")
        return None

    async def _post_message(self, request: web.Request) -> web.StreamResponse:
        return await self._reply(request, await self._check_post(request))

    async def _check_post(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            error = "not_authed" if "Authorization" not in request.headers else "invalid_auth"
            return _api(error)
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return _api("invalid_json")
        if payload.get("channel") != CHANNEL_ID:
            return _api("channel_not_found")
        text = payload.get("text") or ""
        if not text:
            return _api("no_text")
        if len(text) > TEXT_LIMIT:
            return _api("msg_too_long")
        return None


def _api(error: str) -> web.Response:
    body = json.dumps({"ok": False, "error": error})
    return web.Response(text=body, content_type="application/json")
