"""`GET /api/health` and intake while the Store cannot be reached (issue 16 item 9): the health
check answers 503 `not_ready` with the reason, intake 500 `storage_error` (logged once by the
Store, not per request); once the Store answers again, 200 as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from notifierd.api.app import build_app
from notifierd.api.intake import DaemonIntake
from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.errors import StoreUnreachable
from notifierd.maintenance import Maintenance
from notifierd.metrics import Metrics
from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore

Client = TestClient[web.Request, web.Application]
REASON = "the database does not answer (for 3 s)"


class AwayStore(SqliteStore):
    """A Store whose database is away while `reason` is set: adds fail as PostgreSQL's do."""

    reason: str | None = None

    def unreachable(self) -> str | None:
        return self.reason

    async def add(self, job: NewJob, now: float) -> int:
        if self.reason is not None:
            raise StoreUnreachable(f"the database postgresql://db/q {self.reason}")
        return await super().add(job, now)


@pytest.fixture
async def away(tmp_path: Path) -> AsyncIterator[AwayStore]:
    store = AwayStore(tmp_path / "notifierd.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def client(away: AwayStore, null_channels: dict[str, Channel]) -> AsyncIterator[Client]:
    metrics = Metrics(list(null_channels))
    registry = ChannelRegistry(away, metrics, log_level="info")
    registry.register_all(null_channels)
    intake = DaemonIntake(away, registry, Maintenance(away, registry), metrics)
    client = TestClient(TestServer(build_app(intake, 1024 * 1024, 86400)))
    await client.start_server()
    yield client
    await client.close()


async def health(client: Client) -> tuple[int, dict[str, Any]]:
    async with client.get("/api/health") as response:
        return response.status, await response.json()


async def test_health_is_503_not_ready_while_the_store_cannot_be_reached(
    away: AwayStore, client: Client
) -> None:
    status, body = await health(client)
    assert (status, body["status"]) == (200, "ok")
    assert "reason" not in body

    away.reason = REASON
    status, body = await health(client)
    assert status == 503
    assert (body["status"], body["reason"], body["paused"]) == ("not_ready", REASON, False)
    assert set(body["channels"]) == {"devnull", "lower", "fanout"}

    away.reason = None
    status, body = await health(client)
    assert (status, body["status"]) == (200, "ok")


async def test_intake_is_500_storage_error_said_once_by_the_store(
    away: AwayStore, client: Client
) -> None:
    away.reason = REASON
    with capture_logs() as logs:
        for _ in range(3):
            async with client.post("/api/send/devnull", data={"message": "hi"}) as response:
                assert response.status == 500
                answer = await response.json()
                assert answer["code"] == "storage_error"
                assert "postgresql" not in answer["description"]
    assert [entry for entry in logs if entry["event"] == "send.store_failed"] == []
    away.reason = None
    async with client.post("/api/send/devnull", data={"message": "hi"}) as response:
        assert response.status == 204
