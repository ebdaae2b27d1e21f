"""Fixtures for worker tests: running fakes of the remote services, a test certificate, and
workers opened (and closed) around a test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from notifierd.workers.base import Worker
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.fakes.smsru import FakeSmsRu
from tests.fakes.smtp import FakeSmtp
from tests.fakes.tls import Certificate, self_signed_certificate
from tests.fakes.twilio import FakeTwilio


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def smsru() -> Iterator[FakeSmsRu]:
    fake = FakeSmsRu()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def gateway() -> Iterator[FakeSmsGateway]:
    fake = FakeSmsGateway(username="kannel", password="kannel-pass-9d2f")
    fake.start()
    yield fake
    fake.stop()


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
