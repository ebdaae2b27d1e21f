"""The aiohttp application: `POST /api/send/{channel}` and `GET /api/ping`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import structlog
from aiohttp import web

from notifierd.api.body import BodyError, parse_query, read_body
from notifierd.api.validation import FieldError, SendRequest, control_string, validate_send
from notifierd.config import Channel
from notifierd.errors import StoreError

log = structlog.get_logger("notifierd.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Intake(Protocol):
    """What the API needs of the daemon."""

    @property
    def unavailable(self) -> bool:
        """True in maintenance and while stopping: the API answers 503."""

    @property
    def channels(self) -> Mapping[str, Channel]: ...

    async def accept(self, channel: Channel, request: SendRequest) -> int:
        """Store the job durably; returns its id."""


ROUTING_ERRORS = {404: "not_found", 405: "method_not_allowed"}
INTAKE = web.AppKey("intake", Intake)
LIMITS = web.AppKey("limits", tuple)


def error_response(
    status: int, code: str, description: str, field: str | None = None
) -> web.Response:
    body: dict[str, str] = {"code": code, "description": description}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def unavailable() -> web.Response:
    return web.Response(status=503)


async def send(request: web.Request) -> web.StreamResponse:
    intake = request.app[INTAKE]
    if intake.unavailable:
        return unavailable()
    max_body_size, max_delay = request.app[LIMITS]
    try:
        name = control_string(request.match_info["channel"], "channel")
    except FieldError as exc:
        return error_response(422, exc.code, exc.description, exc.field)
    channel = intake.channels.get(name)
    if channel is None:
        return error_response(404, "unknown_channel", f"there is no channel named {name!r}")
    try:
        body = await read_body(request, max_body_size)
        query = parse_query(request.rel_url.raw_query_string)
        send_request = validate_send(body, query, channel, max_delay)
    except BodyError as exc:
        return error_response(exc.status, exc.code, exc.description)
    except FieldError as exc:
        return error_response(422, exc.code, exc.description, exc.field)
    try:
        job_id = await intake.accept(channel, send_request)
    except StoreError as exc:
        log.error("send.store_failed", channel=name, error=str(exc))
        return error_response(
            500, "storage_error", "the message could not be stored; it was not accepted"
        )
    return web.Response(status=204, headers={"X-Job-Id": str(job_id)})


async def ping(request: web.Request) -> web.StreamResponse:
    if request.app[INTAKE].unavailable:
        return unavailable()
    return web.Response(status=204)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as the JSON shape of DESIGN §4, never as a traceback or HTML."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            return error_response(413, "body_too_large", "the body is too large")
        response = error_response(
            exc.status, ROUTING_ERRORS.get(exc.status, "http_error"), exc.reason or "error"
        )
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("api.internal_error", path=request.path)
        return error_response(500, "internal_error", "an internal error occurred; see the log")


def build_app(intake: Intake, max_body_size: int, max_delay: int) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=max_body_size)
    app[INTAKE] = intake
    app[LIMITS] = (max_body_size, max_delay)
    app.router.add_post("/api/send/{channel}", send)
    app.router.add_get("/api/ping", ping)
    return app
