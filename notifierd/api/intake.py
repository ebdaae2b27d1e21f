"""The daemon's side of the API: `DaemonIntake` (`api.app.Intake`: channels are looked up and
jobs created in the channel registry, maintenance says when to answer 503, the Store shows the
journal), and `http_server`, the API's server as the settings ask for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from notifierd import __version__
from notifierd.api.app import NOT_READY, build_app
from notifierd.api.auth import protected_routes
from notifierd.api.connections import ConnectionGuard, connection_limit, raise_descriptor_limit
from notifierd.api.journal import job_as_json
from notifierd.api.responses import counting_access_logger
from notifierd.api.server import HttpServer
from notifierd.api.validation import SendRequest
from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.maintenance import Maintenance
from notifierd.metrics import Metrics
from notifierd.settings import Settings
from notifierd.store import Store

log = structlog.get_logger("notifierd")


class DaemonIntake:
    def __init__(
        self, store: Store, channels: ChannelRegistry, maintenance: Maintenance, metrics: Metrics
    ) -> None:
        self._store = store
        self._registry = channels
        self._maintenance = maintenance
        self._metrics = metrics
        self.channels: Mapping[str, Channel] = channels.channels

    @property
    def unavailable(self) -> bool:
        return self._maintenance.unavailable

    async def accept(self, channel: Channel, request: SendRequest) -> int:
        return await self._registry.create_job(
            channel, request.message, request.delay, request.idempotency
        )

    async def job(self, job_id: int) -> dict[str, Any] | None:
        record = await self._store.get_job(job_id)
        return None if record is None else job_as_json(record)

    async def metrics_text(self) -> bytes:
        counts = await self._store.counts(self._store.now())
        maintenance = self._maintenance
        states = self._registry.states(maintenance)
        return self._metrics.render(counts, list(self.channels), maintenance.paused, states)

    def health(self) -> dict[str, Any]:
        maintenance = self._maintenance
        status = "stopping" if maintenance.stopping else "paused" if maintenance.paused else "ok"
        unreachable = self._store.unreachable()
        health = {
            "status": NOT_READY if unreachable else status,
            "paused": maintenance.paused,
            "version": __version__,
            "channels": self._registry.states(maintenance),
        }
        if unreachable:
            health["reason"] = unreachable
        return health


def http_server(settings: Settings, intake: DaemonIntake, metrics: Metrics) -> HttpServer:
    """The API's server (not listening yet), with the limits the settings set."""
    descriptors, _ = raise_descriptor_limit()
    workers = sum(channel.processes for channel in intake.channels.values())
    guard = ConnectionGuard(
        connection_limit(settings.max_connections, descriptors, workers),
        head_timeout=settings.read_timeout,
    )
    log.info("http.limits", descriptors=descriptors, max_connections=guard.limit)
    app = build_app(
        intake,
        settings.max_body_size,
        settings.max_delay,
        tokens=settings.api_tokens,
        protected=protected_routes(settings.auth_ping, settings.auth_metrics),
        read_timeout=settings.read_timeout,
        first_middlewares=(guard.middleware(),),
    )
    return HttpServer(
        app,
        guard,
        read_timeout=settings.read_timeout,
        access_log_class=counting_access_logger(metrics.http_responses.counts, settings.access_log),
        keepalive_timeout=settings.keepalive_timeout,
    )
