"""A fake Telegram Bot API server for tests: records every request and answers as scripted.

It answers `sendMessage` the way the real server does (provider-protocols.md §1): the JSON
envelope, the HTTP status equal to `error_code`, the "Bad Request: …" style descriptions, 401 for
an unknown token and 404 for a malformed one or an unknown method, the parse_mode check, HTML
and MarkdownV2 it cannot parse refused with Telegram's "can't parse entities: …" texts
(`telegram_entities`), and the 4096-character limit counted after parsing. Per chat, it can
instead be told to answer any failure a real deployment meets, including a 502 HTML page, a
non-JSON 200, a slow answer and connection resets.

Like Telegram, it answers 429 "Too Many Requests: retry after N" with `parameters.retry_after`
when a message would exceed a flood limit (`RateLimits`: 1 a second per chat, 20 a minute per
group, 30 a second per bot). The limits are on by default; a test about something else that
sends faster (chat_interval: 0) starts the fake with `limits=None`. Every request's arrival
time and chat are recorded, so a test can check the pace it saw (`peak`, `throttled`).

It runs its own event loop in a background thread, so synchronous tests, asyncio tests and
daemon processes can all talk to it at `fake.url`::

    with FakeTelegramApi() as fake:
        fake.script(-100123, Reply.too_many_requests(2))     # the first request: 429
        fake.always("@news", Reply.blocked())                 # every request to @news: 403
        ...                                                   # point api_url at fake.url
        fake.wait_for(lambda records: len(records) >= 2)
        assert [r.text for r in fake.delivered(-100123)] == ["hello"]

The same scripting is available over HTTP under `/_fake/` (see `_control_routes`), for a fake
run as its own process: `python -m tests.fakes.telegram_api --port 8081 [--no-limits]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Self
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.telegram_entities import EntityError, plain_text

#: The token the fake accepts unless told otherwise. Shaped like a real one.
TOKEN = "123456789:AAF4k3-T0k3n_for_tests_only_aBcDeFgHiJk"

ReplyKind = Literal["ok", "error", "html", "non_json", "slow", "reset", "reset_mid_body"]
_PATH = re.compile(r"/bot(?P<token>[^/]*)/(?P<method>[^/]+)")
_TOKEN_SHAPE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_PARSE_MODES = {"html", "markdown", "markdownv2"}
_BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the named constructors below."""

    kind: ReplyKind = "ok"
    status: int = 200
    description: str = ""
    parameters: dict[str, int] | None = None
    #: The `Retry-After` header of a 429, if any.
    retry_after_header: str | None = None
    #: For `slow`: how long to wait (after recording the request) before answering ok.
    seconds: float = 0.0

    @classmethod
    def ok(cls) -> Reply:
        """Accept the message (still subject to the real server's checks: length, parse_mode)."""
        return cls()

    @classmethod
    def error(
        cls, status: int, description: str, parameters: dict[str, int] | None = None
    ) -> Reply:
        """Any Bot API error: `{"ok":false,"error_code":status,"description":…}`."""
        return cls("error", status, description, parameters)

    @classmethod
    def chat_not_found(cls) -> Reply:
        return cls.error(400, "Bad Request: chat not found")

    @classmethod
    def message_too_long(cls) -> Reply:
        return cls.error(400, "Bad Request: message is too long")

    @classmethod
    def cant_parse_entities(cls) -> Reply:
        return cls.error(
            400,
            "Bad Request: can't parse entities: "
            "Can't find end of the entity starting at byte offset 4",
        )

    @classmethod
    def blocked(cls) -> Reply:
        return cls.error(403, "Forbidden: bot was blocked by the user")

    @classmethod
    def cant_initiate(cls) -> Reply:
        return cls.error(403, "Forbidden: bot can't initiate conversation with a user")

    @classmethod
    def kicked(cls) -> Reply:
        return cls.error(403, "Forbidden: bot was kicked from the group chat")

    @classmethod
    def unauthorized(cls) -> Reply:
        return cls.error(401, "Unauthorized")

    @classmethod
    def not_found(cls) -> Reply:
        return cls.error(404, "Not Found")

    @classmethod
    def too_many_requests(cls, retry_after: int = 2, *, header: bool = True) -> Reply:
        """A 429 with `parameters.retry_after` and, unless `header=False`, `Retry-After`."""
        return cls(
            "error",
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
            str(retry_after) if header else None,
        )

    @classmethod
    def migrate(cls, to: int) -> Reply:
        """The group became a supergroup with id `to`."""
        return cls.error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            {"migrate_to_chat_id": to},
        )

    @classmethod
    def server_error(cls) -> Reply:
        return cls.error(500, "Internal Server Error: restart")

    @classmethod
    def bad_gateway_html(cls) -> Reply:
        """nginx's 502 page, as Telegram's front end sends it: HTML, not JSON."""
        return cls("html", 502)

    @classmethod
    def non_json(cls) -> Reply:
        """A 200 whose body is not JSON."""
        return cls("non_json", 200)

    @classmethod
    def slow(cls, seconds: float = 30.0) -> Reply:
        """Record the message, then wait `seconds` (past the client's timeout) and accept it."""
        return cls("slow", 200, seconds=seconds)

    @classmethod
    def reset(cls) -> Reply:
        """Record the request, then reset the connection (RST) without answering."""
        return cls("reset", 0)

    @classmethod
    def reset_mid_body(cls) -> Reply:
        """Send the 200 headers and the start of the body, then reset the connection."""
        return cls("reset_mid_body", 200)


@dataclass(frozen=True)
class RateLimits:
    """Telegram's flood limits (Bots FAQ): at most `count` accepted messages in any `window`
    seconds, per chat, per group (a negative chat id) and per bot (token). `slack` seconds are
    forgiven at the edge of a window: two messages that a client paces exactly one second
    apart may arrive a little closer, and Telegram does not count to the millisecond either."""

    per_chat: tuple[int, float] = (1, 1.0)
    per_group: tuple[int, float] = (20, 60.0)
    per_bot: tuple[int, float] = (30, 1.0)
    slack: float = 0.05


@dataclass(frozen=True)
class Recorded:
    """One request the fake received, and what it answered."""

    http_method: str
    path: str
    token: str
    method: str
    content_type: str
    #: The raw request body.
    body: bytes
    #: The parameters, from the query string and the JSON, form or multipart body.
    params: dict[str, Any]
    #: `time.monotonic()` at arrival: comparable across processes on one host (CLOCK_MONOTONIC).
    at: float
    #: What the fake answered: a `Reply.kind`, and for `ok`/`error` the HTTP status.
    reply: ReplyKind
    status: int
    #: The client's "host:port": equal for two requests on one kept-alive connection.
    peer: str
    #: The `description` of an error answer ("" for an accepted message).
    description: str = ""

    @property
    def chat(self) -> str | None:
        """The `chat_id` as a string (the key scripts use), or None."""
        chat = self.params.get("chat_id")
        return None if chat is None else str(chat)

    @property
    def text(self) -> str | None:
        text = self.params.get("text")
        return text if isinstance(text, str) else None

    @property
    def accepted(self) -> bool:
        """The fake accepted the message. A `slow` or `reset_mid_body` answer counts: the
        client may not have seen the answer, but a real server would have sent the message."""
        return self.reply in ("ok", "slow", "reset_mid_body") and self.status == 200

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = self.body.decode("utf-8", "replace")
        return data


@dataclass
class _Chat:
    script: deque[Reply] = field(default_factory=deque)
    always: Reply | None = None


class FakeTelegramApi:
    """The fake server. `start()` (or `with`) binds 127.0.0.1 on a free port (or `port`)."""

    def __init__(
        self, token: str = TOKEN, port: int = 0, limits: RateLimits | None = RateLimits()
    ) -> None:
        self.token = token
        self.limits = limits
        #: Arrival times of the accepted messages, per flood-limit key (chat, group, bot).
        self._sent: dict[str, deque[float]] = {}
        self._port = port
        self._lock = threading.Condition()
        self._records: list[Recorded] = []
        self._chats: dict[str, _Chat] = {}
        self._default = Reply.ok()
        self._message_ids: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # -- life cycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The `api_url` to give the worker, e.g. `http://127.0.0.1:40123`."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-telegram-api", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.add_routes(self._control_routes())
        app.router.add_route("*", "/{path:.*}", self._handle)
        # handler_cancellation: a handler whose client went away (a reset, a slow answer the
        # client gave up on) is cancelled instead of lingering until shutdown.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        self._port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    # -- scripting ---------------------------------------------------------------------------

    def script(self, chat_id: int | str, *replies: Reply, times: int = 1) -> None:
        """Answer the next requests for `chat_id` with `replies`, in order, each `times` times;
        afterwards as `always` says (default: ok)."""
        with self._lock:
            chat = self._chats.setdefault(str(chat_id), _Chat())
            chat.script.extend(reply for reply in replies for _ in range(times))

    def always(self, chat_id: int | str, reply: Reply) -> None:
        """Answer every request for `chat_id` with `reply` once its script is used up."""
        with self._lock:
            self._chats.setdefault(str(chat_id), _Chat()).always = reply

    def set_default(self, reply: Reply) -> None:
        """The answer for chats with neither a script nor an `always` (initially ok)."""
        with self._lock:
            self._default = reply

    def reset(self) -> None:
        """Forget scripts and records (the token and the limits stay)."""
        with self._lock:
            self._records.clear()
            self._sent.clear()
            self._chats.clear()
            self._default = Reply.ok()

    # -- what it saw -------------------------------------------------------------------------

    @property
    def records(self) -> list[Recorded]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._records)

    def received(self, chat_id: int | str) -> list[Recorded]:
        """The sendMessage requests for `chat_id`, whatever the answer."""
        key = str(chat_id)
        return [r for r in self.records if r.method.lower() == "sendmessage" and r.chat == key]

    def delivered(self, chat_id: int | str) -> list[Recorded]:
        """The messages to `chat_id` the fake accepted, in order."""
        return [r for r in self.received(chat_id) if r.accepted]

    def throttled(self) -> list[Recorded]:
        """The requests answered 429 (by a script or by the flood limits)."""
        return [r for r in self.records if r.status == 429]

    def peak(self, window: float = 1.0) -> int:
        """The most messages the fake accepted within any `window` seconds."""
        times = sorted(r.at for r in self.records if r.accepted)
        first, most = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window:
                first += 1
            most = max(most, last - first + 1)
        return most

    def wait_for(
        self, condition: Callable[[list[Recorded]], bool], timeout: float = 10.0
    ) -> list[Recorded]:
        """Block until `condition(records)` holds; return the records. AssertionError after
        `timeout` seconds, with what was received."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self._records):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.chat, r.reply, r.status, r.text) for r in self._records]
                    raise AssertionError(f"fake Telegram: condition not met in {timeout}s: {seen}")
                self._lock.wait(left)
            return list(self._records)

    # -- serving -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        params = dict(request.query)
        params.update(await _body_params(request, body))
        match = _PATH.fullmatch(request.path)
        token, method = (match["token"], match["method"]) if match else ("", "")
        reply = self._choose(token, method, params, time.monotonic())
        record = Recorded(
            request.method,
            request.path,
            token,
            method,
            request.content_type,
            body,
            params,
            time.monotonic(),
            reply.kind,
            reply.status,
            _peer(request),
            reply.description,
        )
        with self._lock:
            self._records.append(record)
            self._lock.notify_all()
        return await self._answer(request, reply, params)

    def _choose(self, token: str, method: str, params: dict[str, Any], now: float) -> Reply:
        """The reply to give, checking what the real server checks first."""
        if not _TOKEN_SHAPE.fullmatch(token):
            return Reply.not_found()
        if token != self.token:
            return Reply.unauthorized()
        if method.lower() != "sendmessage":
            return Reply.not_found()
        with self._lock:
            chat = self._chats.get(str(params.get("chat_id")))
            if chat is not None and chat.script:
                reply = chat.script.popleft()
            elif chat is not None and chat.always is not None:
                reply = chat.always
            else:
                reply = self._default
        if reply.kind in ("ok", "slow", "reset_mid_body"):
            return _validate(params) or self._flood_control(token, params, now) or reply
        return reply

    def _flood_control(self, token: str, params: dict[str, Any], now: float) -> Reply | None:
        """A 429 if accepting this message would exceed a limit, else None (and it counts)."""
        if self.limits is None:
            return None
        chat = str(params["chat_id"])
        limits = [(f"chat {chat}", self.limits.per_chat), (f"bot {token}", self.limits.per_bot)]
        if chat.startswith("-"):
            limits.append((f"group {chat}", self.limits.per_group))
        with self._lock:
            wait = 0.0
            for key, (count, window) in limits:
                sent = self._sent.setdefault(key, deque())
                while sent and sent[0] <= now - window + self.limits.slack:
                    sent.popleft()
                if len(sent) >= count:
                    wait = max(wait, sent[0] + window - self.limits.slack - now)
            if wait > 0:
                return Reply.too_many_requests(max(1, math.ceil(wait)))
            for key, _ in limits:
                self._sent[key].append(now)
        return None

    async def _answer(
        self, request: web.Request, reply: Reply, params: dict[str, Any]
    ) -> web.StreamResponse:
        if reply.kind == "reset_mid_body":
            response = web.StreamResponse(headers={"Content-Length": "200"})
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(b'{"ok":true,"result":{"message_id":')
        if reply.kind in ("reset", "reset_mid_body"):
            return await self._reset(request)
        if reply.kind == "html":
            return web.Response(
                status=reply.status, text=_BAD_GATEWAY_PAGE, content_type="text/html"
            )
        if reply.kind == "non_json":
            return web.Response(status=reply.status, text="OK, sort of", content_type="text/plain")
        if reply.kind == "slow":
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), reply.seconds)
        if reply.kind == "error":
            error: dict[str, Any] = {
                "ok": False,
                "error_code": reply.status,
                "description": reply.description,
            }
            if reply.parameters:
                error["parameters"] = reply.parameters
            headers = {"Retry-After": reply.retry_after_header} if reply.retry_after_header else {}
            return web.json_response(error, status=reply.status, headers=headers)
        return web.json_response({"ok": True, "result": self._message(params)})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            # Linger 0: closing sends an RST, not a FIN, as a crashed middlebox would.
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        # The connection is gone, so aiohttp cancels this handler (handler_cancellation).
        assert self._stopping is not None
        await self._stopping.wait()
        return web.Response(status=500)

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        """A Message object for an accepted sendMessage, as the real server returns it."""
        chat_id = params["chat_id"]
        key = str(chat_id)
        with self._lock:
            self._message_ids[key] = message_id = self._message_ids.get(key, 0) + 1
        return {
            "message_id": message_id,
            "from": {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Fake"},
            "chat": _chat_object(chat_id),
            "date": int(time.time()),
            "text": plain_text(params["text"], params.get("parse_mode")).strip(),
        }

    def _control_routes(self) -> list[web.RouteDef]:
        """Scripting over HTTP, for a fake in another process. Bodies and answers are JSON; a
        reply is a `Reply` as a dict, e.g. {"kind": "error", "status": 403, "description": …}.

        - POST /_fake/script  {"chat_id": …, "replies": [reply, …], "times": 1}
        - POST /_fake/always  {"chat_id": …, "reply": reply}
        - POST /_fake/default {"reply": reply}
        - POST /_fake/reset
        - GET  /_fake/records → [record, …] (body as text, `at` as time.monotonic())
        """

        async def script(request: web.Request) -> web.Response:
            data = await request.json()
            replies = [Reply(**reply) for reply in data["replies"]]
            self.script(data["chat_id"], *replies, times=data.get("times", 1))
            return web.Response(status=204)

        async def always(request: web.Request) -> web.Response:
            data = await request.json()
            self.always(data["chat_id"], Reply(**data["reply"]))
            return web.Response(status=204)

        async def default(request: web.Request) -> web.Response:
            self.set_default(Reply(**(await request.json())["reply"]))
            return web.Response(status=204)

        async def reset(request: web.Request) -> web.Response:
            self.reset()
            return web.Response(status=204)

        async def records(request: web.Request) -> web.Response:
            return web.json_response([record.as_json() for record in self.records])

        return [
            web.post("/_fake/script", script),
            web.post("/_fake/always", always),
            web.post("/_fake/default", default),
            web.post("/_fake/reset", reset),
            web.get("/_fake/records", records),
        ]


async def _body_params(request: web.Request, body: bytes) -> dict[str, Any]:
    """The parameters in a JSON, form-urlencoded or multipart body (the Bot API takes all)."""
    if not body:
        return {}
    if request.content_type == "application/json":
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            return data if isinstance(data, dict) else {}
        return {}
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    if request.content_type.startswith("multipart/"):
        return {
            key: value for key, value in (await request.post()).items() if isinstance(value, str)
        }
    return {}


def _validate(params: dict[str, Any]) -> Reply | None:
    """The real server's checks of a sendMessage; None if it passes."""
    if params.get("chat_id") in (None, ""):
        return Reply.error(400, "Bad Request: chat_id is empty")
    text = params.get("text")
    if not isinstance(text, str):
        return Reply.error(400, "Bad Request: message text is empty")
    parse_mode = params.get("parse_mode")
    if parse_mode and str(parse_mode).lower() not in _PARSE_MODES:
        return Reply.error(400, "Bad Request: unsupported parse_mode")
    try:
        plain = plain_text(text, parse_mode).strip()
    except EntityError as exc:
        return Reply.error(400, f"Bad Request: can't parse entities: {exc}")
    if not plain:
        return Reply.error(400, "Bad Request: message text is empty")
    # Telegram counts the characters (code points) of the text after parsing.
    if len(plain) > 4096:
        return Reply.message_too_long()
    return None


def _peer(request: web.Request) -> str:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peername[0]}:{peername[1]}" if peername else ""


def _chat_object(chat_id: int | str) -> dict[str, Any]:
    if isinstance(chat_id, str) and chat_id.startswith("@"):
        return {"id": -1001000000001, "type": "channel", "username": chat_id[1:]}
    number = int(chat_id)
    if number > 0:
        return {"id": number, "type": "private", "first_name": "Test"}
    # Supergroup and channel ids are -100 followed by ten or more digits.
    kind = "supergroup" if number <= -1_000_000_000_000 else "group"
    return {"id": number, "type": kind, "title": "Test group"}


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server for tests.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--token", default=TOKEN, help="the bot token it accepts")
    parser.add_argument(
        "--no-limits", action="store_true", help="never answer 429 for sending too fast"
    )
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    limits = None if args.no_limits else RateLimits()
    with FakeTelegramApi(args.token, args.port, limits) as fake:
        print(fake.url, flush=True)  # the first line of output: where to point api_url
        stop.wait()


if __name__ == "__main__":
    main()
