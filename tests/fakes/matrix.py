"""A fake Matrix homeserver: the client-server API's
`PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`, with access tokens, room
membership, idempotent transaction ids (per token, as the spec has them per device), and the
`{"errcode", "error"}` errors, `M_LIMIT_EXCEEDED` with `retry_after_ms` among them.

    fake = FakeMatrix()
    fake.script(limit_exceeded(1500))      # the next answers, in order
    fake.script(StoreThen(Reset()))        # store the event, then break the connection
    fake.events                            # the events in the room, once each
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Raw, RecordedRequest, ThreadedServer, answer, record, unwrap_slow

ACCESS_TOKEN = "syt_YWxlcnRz_kQzMxVbNfRzPsTgUhViW_0a1B2c"
ROOM_ID = "!QtykxKocfZaZOUrTwp:example.org"
EVENT_BYTES = 65_536


@dataclass(frozen=True)
class Event:
    event_id: str
    txn_id: str
    content: dict[str, Any]


@dataclass(frozen=True)
class StoreThen:
    """Store the event as usual, then answer `reply` (a `Reset`: the client never learns)."""

    reply: object


def matrix_error(status: int, errcode: str, error: str, **extra: Any) -> Raw:
    body = {"errcode": errcode, "error": error, **extra}
    return Raw(status, json.dumps(body), "application/json")


def limit_exceeded(retry_after_ms: int) -> Raw:
    return matrix_error(429, "M_LIMIT_EXCEEDED", "Too Many Requests", retry_after_ms=retry_after_ms)


class FakeMatrix(ThreadedServer):
    def __init__(self) -> None:
        self.access_token = ACCESS_TOKEN
        self.requests: list[RecordedRequest] = []
        self.events: list[Event] = []
        self._transactions: dict[tuple[str, str], str] = {}
        self._replies: deque[object] = deque()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{event_type}/{txn}", self._send)
        super().__init__(app)

    def script(self, *replies: object) -> None:
        """Answer the next requests with these (`Raw`, `Slow`, `Reset`, `StoreThen`)."""
        self._replies.extend(replies)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        recorded = await record(request)
        self.requests.append(recorded)
        delay, reply = unwrap_slow(self._replies.popleft() if self._replies else None, None)
        if isinstance(reply, StoreThen):
            self._accept(request, recorded)
            reply = reply.reply
        if reply is not None:
            return await answer(request, reply, delay, None, "matrix")
        return await answer(request, None, delay, self._accept(request, recorded), "matrix")

    def _accept(self, request: web.Request, recorded: RecordedRequest) -> web.Response:
        token = recorded.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token:
            return _error(401, "M_MISSING_TOKEN", "Missing access token")
        if token != self.access_token:
            return _error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.", soft_logout=False)
        if request.match_info["room"] != ROOM_ID:
            user = "@alerts:example.org"
            return _error(
                403, "M_FORBIDDEN", f"User {user} not in room {request.match_info['room']}"
            )
        txn = (token, request.match_info["txn"])
        if txn in self._transactions:  # the same transaction again: the same event, once
            return _ok(self._transactions[txn])
        if len(recorded.body) + 1024 > EVENT_BYTES:
            return _error(413, "M_TOO_LARGE", "event too large")
        try:
            content = recorded.json()
        except ValueError:
            return _error(400, "M_NOT_JSON", "Content not JSON.")
        if not isinstance(content.get("body"), str) or content.get("msgtype") is None:
            return _error(400, "M_BAD_JSON", "'body' and 'msgtype' are required")
        event = Event(f"$event{next(self._ids)}", txn[1], content)
        self.events.append(event)
        self._transactions[txn] = event.event_id
        return _ok(event.event_id)


def _ok(event_id: str) -> web.Response:
    return web.Response(text=json.dumps({"event_id": event_id}), content_type="application/json")


def _error(status: int, errcode: str, error: str, **extra: Any) -> web.Response:
    reply = matrix_error(status, errcode, error, **extra)
    return web.Response(status=status, text=reply.body, content_type="application/json")
