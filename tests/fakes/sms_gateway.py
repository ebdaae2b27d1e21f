"""A fake generic SMS gateway, shaped like Kannel's `sendsms` but answering on any path and
method, so one fake serves every template the `http` provider can be given.

The phone is read from the first of `to` / `phone`, the text from `text` / `message` / `msg`,
in the query string, a form body or a JSON object body. Credentials, when the fake has them,
are checked as Kannel does (`username` / `password` parameters) or as HTTP Basic; a mismatch
answers `403 Authorization failed for sendsms`. Success is Kannel's `202 0: Accepted for
delivery`.

    fake = FakeSmsGateway(username="kannel", password="s3cret")
    fake.script("+79251234567", QUEUED, GatewayReply(400, "Missing receiver number"), Raw(503))
    fake.messages   # (path, phone, text) of each accepted request
    fake.requests   # every request, as received

Replies: `ACCEPTED`, `QUEUED` (`202 3: Queued for later delivery`), `GatewayReply(status,
text, headers)`, and the shared `Raw`, `Slow`, `Reset`.
"""

from __future__ import annotations

import base64
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import (
    RecordedRequest,
    ThreadedServer,
    answer,
    record,
    unwrap_slow,
)


@dataclass(frozen=True)
class GatewayReply:
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    #: Whether the message counts as accepted (recorded in `messages`).
    accepted: bool = False


ACCEPTED = GatewayReply(202, "0: Accepted for delivery", accepted=True)
QUEUED = GatewayReply(202, "3: Queued for later delivery", accepted=True)
AUTH_FAILED = GatewayReply(403, "Authorization failed for sendsms")


@dataclass(frozen=True)
class GatewayMessage:
    path: str
    phone: str
    text: str


#: Credentials the tests give the fake gateway (and their channels).
TEST_USERNAME = "kannel"
TEST_PASSWORD = "kannel-pass-9d2f"


class FakeSmsGateway(ThreadedServer):
    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.requests: list[RecordedRequest] = []
        self.messages: list[GatewayMessage] = []
        self._scripts: defaultdict[str, deque[object]] = defaultdict(deque)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._send)
        super().__init__(app)

    def script(self, phone: str, *replies: object) -> None:
        """Answer the next requests for `phone` with `replies`, in order."""
        self._scripts[phone].extend(replies)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        if not self._authorized(request, recorded):
            return _response(AUTH_FAILED)
        phone = _first(recorded.params, "to", "phone")
        text = _first(recorded.params, "text", "message", "msg")
        if not phone:
            return _response(GatewayReply(400, "Missing receiver number"))
        script = self._scripts[phone]
        delay, reply = unwrap_slow(script.popleft() if script else ACCEPTED, ACCEPTED)
        own = None
        if isinstance(reply, GatewayReply):
            if reply.accepted:
                self.messages.append(GatewayMessage(recorded.path, phone, text))
            own = _response(reply)
        return await answer(request, reply, delay, own, "gateway")

    def _authorized(self, request: web.Request, recorded: RecordedRequest) -> bool:
        if self.username is None:
            return True
        params = recorded.params
        if params.get("username") == self.username and params.get("password") == self.password:
            return True
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {basic}"


def _first(params: dict[str, str], *names: str) -> str:
    return next((params[name] for name in names if params.get(name)), "")


def _response(reply: GatewayReply) -> web.Response:
    return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
