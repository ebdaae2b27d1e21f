"""Fixtures shared by the worker tests and the end-to-end tests: running fakes of the remote
services, a test certificate, and PostgreSQL (`tests.postgres`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.sms_gateway import TEST_PASSWORD, TEST_USERNAME, FakeSmsGateway
from tests.fakes.smsru import FakeSmsRu
from tests.fakes.tls import Certificate, self_signed_certificate
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webhook import FakeWebhook
from tests.plugins.venv import plugin_venv
from tests.postgres import postgres_admin_url, postgres_server, postgres_url

__all__ = ["postgres_admin_url", "postgres_server", "postgres_url"]


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
    fake = FakeSmsGateway(username=TEST_USERNAME, password=TEST_PASSWORD)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    fake = FakeWebhook()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the example plugin pip-installed (see `plugin_venv`); its python."""
    return plugin_venv(tmp_path_factory.mktemp("plugin"))
