"""The example third-party worker package under examples/ installs with pip into a fresh
virtual environment, and notifierd then finds and uses its worker type by name."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.fakes.webhook import FakeWebhook
from tests.plugins.venv import run


def test_installed_plugin_is_found_by_name(venv_python: Path) -> None:
    script = textwrap.dedent(
        """
        import json
        from notifierd.workers.registry import (
            UnknownWorker, installed_worker_names, load_worker_class,
        )
        try:
            load_worker_class("nope")
        except UnknownWorker as exc:
            error = str(exc)
        worker = load_worker_class("example-webhook")
        print(json.dumps({
            "class": f"{worker.__module__}.{worker.__qualname__}",
            "names": installed_worker_names(),
            "error": error,
        }))
        """
    )
    found = json.loads(run([str(venv_python), "-c", script]))
    assert found["class"] == "notifierd_webhook.worker.WebhookWorker"
    assert {"email", "example-webhook", "null", "sms"} <= set(found["names"])
    assert found["error"] == f"unknown worker type 'nope'; installed: {', '.join(found['names'])}"


def test_installed_plugin_delivers(venv_python: Path, webhook: FakeWebhook) -> None:
    # What a worker process of an `example-webhook` channel does: look the type up, validate the
    # channel's params, open, send, close.
    script = textwrap.dedent(
        """
        import json, sys
        from notifierd.messages import Delivery
        from notifierd.workers.registry import load_worker_class
        spec = json.load(sys.stdin)
        worker_class = load_worker_class("example-webhook")
        params = worker_class.Params.model_validate(spec["params"])
        worker = worker_class("hooks", params)
        worker.open()
        for recipient in worker_class.recipients(params):
            worker.send(Delivery(1, 1, "hooks", recipient, spec["message"], 1))
        worker.close()
        """
    )
    spec = {
        "params": {
            "url": f"{webhook.base_url}/notify",
            "token": "hook-token-1",
            "recipients": ["ops"],
        },
        "message": "Диск заполнен на 98 %\nвторая строка",
    }
    run([str(venv_python), "-c", script], stdin=json.dumps(spec))
    assert webhook.payloads == [
        {"channel": "hooks", "recipient": "ops", "message": "Диск заполнен на 98 %\nвторая строка"}
    ]
    assert webhook.requests[0].headers["Authorization"] == "Bearer hook-token-1"
