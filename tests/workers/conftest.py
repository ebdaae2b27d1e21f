"""Fixtures for worker tests: a running fake Telegram Bot API, and opened Telegram workers."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from notifierd.workers.telegram import TelegramParams, TelegramWorker
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi

MakeWorker = Callable[..., TelegramWorker]


@pytest.fixture
def telegram_api() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi() as fake:
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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
