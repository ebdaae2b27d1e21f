"""The daemon's side of the API (`api.app.Intake`): channels are looked up and jobs created
in the channel registry; maintenance says when to answer 503; the Store shows the journal."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from notifierd import __version__
from notifierd.api.journal import job_as_json
from notifierd.api.validation import SendRequest
from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.maintenance import Maintenance
from notifierd.metrics import Metrics
from notifierd.store import Store


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
        counts = await self._store.counts(time.time())
        maintenance = self._maintenance
        states = self._registry.states(maintenance)
        return self._metrics.render(counts, list(self.channels), maintenance.paused, states)

    def health(self) -> dict[str, Any]:
        maintenance = self._maintenance
        status = "stopping" if maintenance.stopping else "paused" if maintenance.paused else "ok"
        return {
            "status": status,
            "paused": maintenance.paused,
            "version": __version__,
            "channels": self._registry.states(maintenance),
        }
