"""Fixtures for worker tests: running fakes of the remote services (Telegram Bot API, Twilio,
SMS.ru, a generic SMS gateway, SMTP), a test certificate, and workers opened (and closed) around
a test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from notifierd.workers.base import Worker
from notifierd.workers.telegram import TelegramParams, TelegramWorker
from tests.fakes.server import free_port
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi
from tests.fakes.tls import Certificate

MakeWorker = Callable[..., TelegramWorker]


@pytest.fixture
def telegram_api() -> Iterator[FakeTelegramApi]:
    """The fake without flood limits: `make_worker` does not pace chats (chat_interval: 0)."""
    with FakeTelegramApi(limits=None) as fake:
        yield fake


@pytest.fixture
def make_worker(telegram_api: FakeTelegramApi) -> Iterator[MakeWorker]:
    """`make_worker(**params)`: an opened worker aimed at the fake, closed after the test.
    Defaults: the fake's token, chat 1001, a 2 s timeout and no pause between parts."""
    workers: list[TelegramWorker] = []

    def make(**params: Any) -> TelegramWorker:
        defaults: dict[str, Any] = {
            "token": TOKEN,
            "chat_id": 1001,
            "api_url": telegram_api.url,
            "timeout": 2,
            "chat_interval": 0,
            "group_chat_interval": 0,
        }
        worker = TelegramWorker("alerts", TelegramParams(**(defaults | params)))
        worker.open()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a 127.0.0.1 port nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def open_worker() -> Iterator[Callable[..., Any]]:
    """`open_worker(WorkerClass, params_dict)`: a worker with validated params, opened; closed
    at the end of the test."""
    opened: list[Worker] = []

    def make(worker_class: type[Worker], params: dict[str, Any], channel: str = "alerts") -> Any:
        worker = worker_class(channel, worker_class.Params.model_validate(params))
        worker.open()
        opened.append(worker)
        return worker

    yield make
    for worker in opened:
        worker.close()


@pytest.fixture
def smtp_server(certificate: Certificate) -> Iterator[Callable[..., FakeSmtp]]:
    """`smtp_server(security=..., username=..., ...)`: a started `FakeSmtp` with the test
    certificate, stopped at the end of the test."""
    started: list[FakeSmtp] = []

    def make(**kwargs: Any) -> FakeSmtp:
        server = FakeSmtp(certificate, **kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
