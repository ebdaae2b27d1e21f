"""A fake Microsoft Teams: a Workflows (Power Automate) webhook,
`POST /workflows/{id}/triggers/manual/paths/invoke?...&sig=...`, which takes a message with
an Adaptive Card and answers 202, its errors `{"error": {"code", "message"}}` and its 429
(`WorkflowTriggerIsThrottled`, with Retry-After); and a legacy Office 365 connector,
`POST /webhookb2/{...}`, which takes `{"text"}` and answers `1`.

    fake = FakeTeams()
    fake.workflow_url, fake.connector_url
    fake.script(throttled(2))          # the next answers, in order
    fake.texts                         # the text of each message posted
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

WORKFLOW_ID = "4bd1b2c4e0a64d1e9f3a6c8b7d5e2f10"
SIGNATURE = "Yq3XK9dLm2PzR7tVw4NcB8hJf6Gs1AeU0oIy5TkQrWx"
CONNECTOR_PATH = (
    "/webhookb2/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b@72f988bf"
    "/IncomingWebhook/9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49/a1b2c3d4"
)
CARD = "application/vnd.microsoft.card.adaptive"


def teams_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Raw:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Raw(status, body, "application/json", headers or {})


def throttled(retry_after: int) -> Raw:
    return teams_error(
        429,
        "WorkflowTriggerIsThrottled",
        "The workflow trigger is throttled. Retry after the time in the Retry-After header.",
        {"Retry-After": str(retry_after)},
    )


class FakeTeams(ThreadedServer):
    def __init__(self) -> None:
        self.signature = SIGNATURE
        self.requests: list[RecordedRequest] = []
        self.texts: list[str] = []
        self.payloads: list[dict[str, Any]] = []
        self._replies: deque[object] = deque()
        app = web.Application()
        app.router.add_post(f"/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke", self._flow)
        app.router.add_post(CONNECTOR_PATH, self._connector)
        super().__init__(app)

    @property
    def workflow_url(self) -> str:
        return (
            f"{self.base_url}/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIGNATURE}"
        )

    @property
    def connector_url(self) -> str:
        return self.base_url + CONNECTOR_PATH

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`), in order."""
        self._replies.extend(replies)

    async def _flow(self, request: web.Request) -> web.StreamResponse:
        return await self._receive(request, self._run_flow)

    async def _connector(self, request: web.Request) -> web.StreamResponse:
        return await self._receive(request, self._post_connector)

    async def _receive(self, request: web.Request, accept: Any) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if reply is not None:
            return await answer(request, reply, delay, None, "teams")
        return await answer(request, None, delay, accept(recorded), "teams")

    def _run_flow(self, request: RecordedRequest) -> web.Response:
        if request.query.get("sig") != self.signature:
            return _error(
                teams_error(
                    401,
                    "DirectApiAuthorizationRequired",
                    "The request must be authenticated only by Shared Access scheme.",
                )
            )
        payload = request.json()
        attachments = payload.get("attachments") or []
        cards = [a["content"] for a in attachments if a.get("contentType") == CARD]
        if payload.get("type") != "message" or len(cards) != 1:
            return _error(
                teams_error(400, "InvalidRequestContent", "The message has no Adaptive Card.")
            )
        blocks = [b for b in cards[0].get("body", []) if b.get("type") == "TextBlock"]
        self.payloads.append(payload)
        self.texts.append("\n".join(b["text"] for b in blocks))
        return web.Response(status=202)

    def _post_connector(self, request: RecordedRequest) -> web.Response:
        payload = request.json()
        if not payload.get("text"):
            return web.Response(
                status=400, text="Bad payload received by generic incoming webhook."
            )
        self.payloads.append(payload)
        self.texts.append(payload["text"])
        return web.Response(text="1")


def _error(reply: Raw) -> web.Response:
    return web.Response(status=reply.status, text=reply.body, content_type="application/json")
