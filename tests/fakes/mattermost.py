"""A fake Mattermost server's incoming webhooks: `POST /hooks/{id}` with `{"text": ...}`,
answered `ok` or with Mattermost's AppError (`{"id", "message", "detailed_error",
"request_id", "status_code"}`), and the 429 of its rate limiting.

    fake = FakeMattermost()
    fake.webhook_url                      # the one webhook it knows
    fake.script(rate_limited(2))          # the next answers, in order
    fake.posts                            # the posts created
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

HOOK_ID = "q8kzh3bmxtnmfg4mpxu9cw1w6a"
POST_LIMIT = 16_383


@dataclass(frozen=True)
class Post:
    text: str
    payload: dict[str, Any]


def app_error(status: int, error_id: str, message: str) -> Raw:
    body = {
        "id": error_id,
        "message": message,
        "detailed_error": "",
        "request_id": "h7tmqx5pgpfa3ptxrjdpzzn6yo",
        "status_code": status,
    }
    return Raw(status, json.dumps(body), "application/json")


def rate_limited(retry_after: int) -> Raw:
    """Mattermost's 429 (its throttled limiter: plain text, Retry-After and X-RateLimit-*)."""
    headers = {
        "Retry-After": str(retry_after),
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(retry_after),
    }
    return Raw(429, "limit exceeded\n", "text/plain", headers)


class FakeMattermost(ThreadedServer):
    def __init__(self) -> None:
        self.hook_id = HOOK_ID
        self.requests: list[RecordedRequest] = []
        self.posts: list[Post] = []
        self._replies: deque[object] = deque()
        app = web.Application()
        app.router.add_post("/hooks/{id}", self._hook)
        super().__init__(app)

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/hooks/{HOOK_ID}"

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order."""
        self._replies.extend(replies)

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if reply is not None:
            return await answer(request, reply, delay, None, "mattermost")
        own = self._accept(request.match_info["id"], recorded)
        return await answer(request, None, delay, own, "mattermost")

    def _accept(self, hook_id: str, request: RecordedRequest) -> web.Response:
        if hook_id != self.hook_id:
            return _error(
                app_error(400, "web.incoming_webhook.invalid.app_error", "Invalid webhook.")
            )
        payload = request.json()
        text = payload.get("text") or ""
        if not text:
            return _error(
                app_error(400, "web.incoming_webhook.text.app_error", "No text specified.")
            )
        if len(text) > POST_LIMIT:
            return _error(
                app_error(400, "model.post.is_valid.message_length.app_error", "Invalid Message.")
            )
        self.posts.append(Post(text, payload))
        return web.Response(text="ok", content_type="text/plain")


def _error(reply: Raw) -> web.Response:
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")
