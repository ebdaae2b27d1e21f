"""The aiohttp application: the routes `openapi.json` (next to this module) describes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from notifierd.api.auth import PROTECTED, bearer_auth
from notifierd.api.body import BodyError, parse_query, read_body
from notifierd.api.hooks import Validator, validate_alertmanager, validate_grafana
from notifierd.api.idempotency import with_key
from notifierd.api.validation import FieldError, SendRequest, control_string, validate_send
from notifierd.config import Channel
from notifierd.errors import IdempotencyKeyReused, StorageLost, StoreError, StoreUnreachable

log = structlog.get_logger("notifierd.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Intake(Protocol):
    """What the API needs of the daemon (`api.intake.DaemonIntake`)."""

    @property
    def unavailable(self) -> bool:
        """True in maintenance and while stopping: the API answers 503."""

    @property
    def channels(self) -> Mapping[str, Channel]:
        """The channel registry's channels by name (SPEC "channel exists")."""

    async def accept(self, channel: Channel, request: SendRequest) -> int:
        """Store the job durably (the registry's `create_job`); returns its id."""

    async def job(self, job_id: int) -> dict[str, Any] | None:
        """The job as the journal knows it, or None."""

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition text."""

    def health(self) -> dict[str, Any]:
        """What `GET /api/health` shows: answered even in maintenance; its status is
        `NOT_READY`, with a `reason`, while the Store cannot be reached."""


#: `GET /api/health`'s status while the Store cannot be reached (with a `reason`).
NOT_READY = "not_ready"
MAX_ID_DIGITS = 18
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTING_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
DEFAULT_READ_TIMEOUT = 10.0
INTAKE = web.AppKey("intake", Intake)
LIMITS = web.AppKey("limits", tuple)
OPENAPI = web.AppKey("openapi", bytes)


def error_response(
    status: int, code: str, description: str, field: str | None = None
) -> web.Response:
    body: dict[str, str] = {"code": code, "description": description}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def unavailable() -> web.Response:
    return web.Response(status=503)


async def send(request: web.Request) -> web.StreamResponse:
    return await receive(request, validate_send)


async def alertmanager_hook(request: web.Request) -> web.StreamResponse:
    return await receive(request, validate_alertmanager)


async def grafana_hook(request: web.Request) -> web.StreamResponse:
    return await receive(request, validate_grafana)


async def receive(request: web.Request, validate: Validator) -> web.StreamResponse:
    """Every route that makes a job: `validate` turns the request's fields into the send
    request; the rest (maintenance, channel, body, storing) is the same for all."""
    intake = request.app[INTAKE]
    if intake.unavailable:
        return unavailable()
    max_body_size, max_delay, read_timeout = request.app[LIMITS]
    try:
        name = control_string(request.match_info["channel"], "channel")
    except FieldError as exc:
        return error_response(422, exc.code, exc.description, exc.field)
    channel = intake.channels.get(name)
    if channel is None:
        return error_response(404, "unknown_channel", f"there is no channel named {name!r}")
    try:
        body = await _read_body_within(request, max_body_size, read_timeout)
        query = parse_query(request.rel_url.raw_query_string)
        send_request = with_key(
            validate(body, query, channel, max_delay), request.headers, body, query
        )
    except BodyError as exc:
        return error_response(exc.status, exc.code, exc.description)
    except FieldError as exc:
        return error_response(422, exc.code, exc.description, exc.field)
    except TimeoutError:
        log.info("api.body_timeout", path=request.path, seconds=read_timeout)
        response = error_response(
            408, "request_timeout", f"the body did not arrive within {read_timeout:g} s"
        )
        response.force_close()  # the rest of the body is not waited for
        return response
    return await store_job(intake, channel, send_request)


async def store_job(intake: Intake, channel: Channel, send_request: SendRequest) -> web.Response:
    """The answer to a request that made a valid job: 204 once it is stored, or why not. Every
    route that makes jobs ends here (the idempotency key included: `api.idempotency`)."""
    try:
        job_id = await intake.accept(channel, send_request)
    except IdempotencyKeyReused as exc:
        return error_response(
            409,
            "idempotency_key_reused",
            f"this idempotency key was used on channel {channel.name!r} for job {exc.job_id}"
            " with another message or delay; use a new key for a new message",
            "idempotency_key",
        )
    except StorageLost:
        return error_response(
            503,
            "storage_lost",
            "the daemon's database file was deleted or replaced; nothing can be stored until an"
            " operator restores it (see the daemon's log); the message was not accepted",
        )
    except StoreError as exc:
        if not isinstance(exc, StoreUnreachable):  # said once by the Store, not per request
            log.error("send.store_failed", channel=channel.name, error=str(exc))
        return error_response(
            500, "storage_error", "the message could not be stored; it was not accepted"
        )
    return web.Response(status=204, headers={"X-Job-Id": str(job_id)})


async def _read_body_within(
    request: web.Request, max_body_size: int, seconds: float
) -> dict[str, Any]:
    if request.content.is_eof():
        # The whole body came with the head (nearly every request): nothing to wait for, and
        # no timer to set up and cancel.
        return await read_body(request, max_body_size)
    async with asyncio.timeout(seconds):
        return await read_body(request, max_body_size)


async def job(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["job_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
        return error_response(404, "unknown_job", f"there is no job {raw!r}")
    found = await request.app[INTAKE].job(int(raw))
    if found is None:
        return error_response(
            404, "unknown_job", f"there is no job {raw} (or it was pruned from the journal)"
        )
    return web.json_response(found, dumps=_dumps)


async def metrics(request: web.Request) -> web.StreamResponse:
    body = await request.app[INTAKE].metrics_text()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def ping(request: web.Request) -> web.StreamResponse:
    if request.app[INTAKE].unavailable:
        return unavailable()
    return web.Response(status=204)


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def health(request: web.Request) -> web.StreamResponse:
    # 200 whenever the process serves, paused too: a liveness probe must not kill a paused
    # instance. 503 only while the Store cannot be reached: nothing can be accepted then.
    body = request.app[INTAKE].health()
    status = 503 if body["status"] == NOT_READY else 200
    return web.json_response(body, status=status, dumps=_dumps)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as the JSON shape of DESIGN §4, never as a traceback or HTML."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(
            exc.status, ROUTING_ERRORS.get(exc.status, "http_error"), exc.reason or "error"
        )
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ConnectionError as exc:
        # The client hung up (mid-body, say): nobody reads the answer; nothing went wrong here.
        log.info("api.client_disconnected", path=request.path, error=str(exc))
        return error_response(400, "client_disconnected", "the client closed the connection")
    except Exception:
        log.exception("api.internal_error", path=request.path)
        return error_response(500, "internal_error", "an internal error occurred; see the log")


def openapi_document() -> bytes:
    """The OpenAPI 3.1 description of this API, shipped as package data."""
    return resources.files("notifierd.api").joinpath("openapi.json").read_bytes()


def build_app(
    intake: Intake,
    max_body_size: int,
    max_delay: int,
    tokens: tuple[str, ...] = (),
    protected: frozenset[str] = PROTECTED,
    *,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    first_middlewares: tuple[Middleware, ...] = (),
) -> web.Application:
    """The API. With `tokens`, the routes named in `protected` need a bearer token. A body
    must arrive within `read_timeout` seconds. `first_middlewares` run before all others."""
    middlewares: list[Middleware] = [*first_middlewares, json_errors]
    if tokens:
        middlewares.append(bearer_auth(tokens, protected))
    app = web.Application(middlewares=middlewares, client_max_size=max_body_size)
    app[INTAKE] = intake
    app[LIMITS] = (max_body_size, max_delay, read_timeout)
    app[OPENAPI] = openapi_document()
    app.router.add_post("/api/send/{channel}", send, name="send")
    app.router.add_post(
        "/api/hooks/alertmanager/{channel}", alertmanager_hook, name="hook_alertmanager"
    )
    app.router.add_post("/api/hooks/grafana/{channel}", grafana_hook, name="hook_grafana")
    app.router.add_get("/api/jobs/{job_id}", job, name="jobs")
    app.router.add_get("/api/ping", ping, name="ping")
    app.router.add_get("/api/health", health, name="health")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/api/openapi.json", openapi, name="openapi")
    return app
