"""A fake Discord webhook endpoint: `POST /api/webhooks/{id}/{token}` as Discord's API answers
it, with its error shapes and rate-limit answer.

    fake = FakeDiscord()                         # accepts WEBHOOK_ID / WEBHOOK_TOKEN
    fake.webhook_url                             # what a channel's webhook_url is set to
    fake.script(rate_limited(1.5))               # the next answers, in order
    fake.messages                                # the messages created, as Discord keeps them

A message's `mention_everyone` is what Discord would do with it: true when the content says
@everyone or @here and `allowed_mentions` (absent: everything) lets it ping.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

WEBHOOK_ID = "1234567890123456789"
WEBHOOK_TOKEN = "aXz9-QkLm_4r7TtWvB2nC5dE8fG1hJ3kL6mN9pQ2sT5uV8wY1zA4bC7dE0fG3hJ6"
CONTENT_LIMIT = 2000


@dataclass(frozen=True)
class Message:
    id: str
    content: str
    mention_everyone: bool
    payload: dict[str, Any]


def discord_error(status: int, message: str, code: int = 0, **extra: Any) -> Raw:
    """An error answer as Discord gives it: `{"message", "code", ...}`."""
    body = {"message": message, "code": code, **extra}
    return Raw(status, json.dumps(body), "application/json")


def rate_limited(retry_after: float, is_global: bool = False) -> Raw:
    """Discord's 429: the body's float `retry_after`, and the headers with it (Retry-After
    rounded up to whole seconds, as Discord sends it)."""
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    headers = {
        "Retry-After": str(int(-(-retry_after // 1))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "a06de2b2d1d0c3f4",
        "X-RateLimit-Scope": "shared" if not is_global else "global",
    }
    return Raw(429, json.dumps(body), "application/json", headers)


def invalid_form_body(field: str, message: str) -> Raw:
    errors = {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}}
    return discord_error(400, "Invalid Form Body", 50035, errors=errors)


class FakeDiscord(ThreadedServer):
    def __init__(self, token: str = WEBHOOK_TOKEN, bucket: tuple[int, float] | None = None) -> None:
        self.token = token
        #: (requests, seconds) the webhook's bucket holds, as Discord's 5 per 2 s; None: no limit.
        self.bucket = bucket
        self._bucket_start = 0.0
        self._bucket_used = 0
        self.requests: list[RecordedRequest] = []
        self.messages: list[Message] = []
        self._replies: deque[object] = deque()
        self._ids = itertools.count(1100000000000000000)
        app = web.Application()
        app.router.add_post("/api/webhooks/{id}/{token}", self._execute)
        super().__init__(app)

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/webhooks/{WEBHOOK_ID}/{self.token}"

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order."""
        self._replies.extend(replies)

    async def _execute(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        own = None
        if reply is None:
            own = self._create(request, recorded)
        return await answer(request, reply, delay, own, "discord")

    def _create(self, request: web.Request, recorded: RecordedRequest) -> web.Response:
        if request.match_info["id"] != WEBHOOK_ID:
            return _json(404, {"message": "Unknown Webhook", "code": 10015})
        if request.match_info["token"] != self.token:
            return _json(401, {"message": "Invalid Webhook Token", "code": 50027})
        if recorded.content_type != "application/json":
            return _json(400, {"message": "Cannot send an empty message", "code": 50006})
        limited = self._spend_bucket()
        if limited is not None:
            return limited
        payload = recorded.json()
        content = payload.get("content", "")
        if not content:
            return _json(400, {"message": "Cannot send an empty message", "code": 50006})
        if len(content) > CONTENT_LIMIT:
            error = invalid_form_body("content", f"Must be {CONTENT_LIMIT} or fewer in length.")
            return web.Response(status=400, body=error.body, content_type="application/json")
        allowed = payload.get("allowed_mentions", {"parse": ["everyone", "users", "roles"]})
        pings = "everyone" in allowed.get("parse", [])
        mention = pings and ("@everyone" in content or "@here" in content)
        message = Message(str(next(self._ids)), content, mention, payload)
        self.messages.append(message)
        answer_body = {"id": message.id, "content": content, "mention_everyone": mention}
        response = (
            _json(200, answer_body) if request.query.get("wait") == "true" else web.Response()
        )
        if request.query.get("wait") != "true":
            response.set_status(204)
        response.headers.update(self._bucket_headers())
        return response

    def _spend_bucket(self) -> web.Response | None:
        """Discord's 429 when the bucket is empty, else None (one request spent)."""
        if self.bucket is None:
            return None
        size, window = self.bucket
        now = time.monotonic()
        if now - self._bucket_start >= window:
            self._bucket_start, self._bucket_used = now, 0
        if self._bucket_used >= size:
            reply = rate_limited(round(self._bucket_start + window - now, 3))
            return web.Response(
                status=429, text=reply.body, content_type="application/json", headers=reply.headers
            )
        self._bucket_used += 1
        return None

    def _bucket_headers(self) -> dict[str, str]:
        if self.bucket is None:
            return {}
        size, window = self.bucket
        reset_after = max(0.0, self._bucket_start + window - time.monotonic())
        return {
            "X-RateLimit-Limit": str(size),
            "X-RateLimit-Remaining": str(size - self._bucket_used),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "a06de2b2d1d0c3f4",
        }


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
