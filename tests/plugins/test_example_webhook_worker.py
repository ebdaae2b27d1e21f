"""The example `example-webhook` worker's outcomes, in-process (imported from examples/)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from notifierd.errors import DeliveryError, PermanentFailure, RateLimited, TemporaryFailure
from notifierd.workers.base import Worker
from tests.fakes.server import Raw, Reset, Slow, free_port
from tests.fakes.webhook import FakeWebhook
from tests.plugins.distinfo import ROOT
from tests.workers.helpers import delivery


@pytest.fixture
def worker_class(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Worker]]:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "notifierd-webhook"))
    module = importlib.import_module("notifierd_webhook")
    cls = module.WebhookWorker
    assert isinstance(cls, type) and issubclass(cls, Worker)
    yield cls
    for name in [name for name in sys.modules if name.startswith("notifierd_webhook")]:
        del sys.modules[name]


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    fake = FakeWebhook()
    fake.start()
    yield fake
    fake.stop()


def make(worker_class: type[Worker], **params: Any) -> Worker:
    worker = worker_class("hooks", worker_class.Params.model_validate(params))
    worker.open()
    return worker


def test_recipients(worker_class: type[Worker]) -> None:
    params = worker_class.Params.model_validate({"url": "http://x/"})
    assert worker_class.recipients(params) == [""]


@pytest.mark.parametrize(
    ("reply", "expected", "retry_after"),
    [
        (Raw(500, "oops"), TemporaryFailure, None),
        (Raw(503, "busy"), TemporaryFailure, None),
        (Raw(429, "slow down", headers={"Retry-After": "4"}), RateLimited, 4.0),
        (Raw(400, "bad"), PermanentFailure, None),
        (Raw(404, "no such hook"), PermanentFailure, None),
        (Reset(), TemporaryFailure, None),
        (Slow(3), TemporaryFailure, None),
    ],
)
def test_classification(
    worker_class: type[Worker],
    webhook: FakeWebhook,
    reply: object,
    expected: type[DeliveryError],
    retry_after: float | None,
) -> None:
    webhook.script(reply)
    worker = make(worker_class, url=f"{webhook.base_url}/x?key=url-secret-1", timeout=0.5)
    try:
        with pytest.raises(DeliveryError) as caught:
            worker.send(delivery("", "hi"))
        assert type(caught.value) is expected
        assert getattr(caught.value, "retry_after", None) == retry_after
        assert "url-secret-1" not in str(caught.value)
        worker.send(delivery("", "again"))
    finally:
        worker.close()
    # (A slow answer came after the payload was taken: a retry may duplicate it.)
    assert webhook.payloads[-1] == {"channel": "alerts", "recipient": "", "message": "again"}


def test_connection_refused(worker_class: type[Worker]) -> None:
    worker = make(worker_class, url=f"http://127.0.0.1:{free_port()}/x")
    try:
        with pytest.raises(TemporaryFailure, match="ConnectionError"):
            worker.send(delivery("", "hi"))
    finally:
        worker.close()
