"""The example third-party worker package under examples/ installs with pip into a fresh
virtual environment, and notifierd then finds and uses its worker type by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.webhook import FakeWebhook
from tests.plugins.distinfo import ROOT, declared_workers, write_dist_info

EXAMPLE = ROOT / "examples" / "notifierd-webhook"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the example plugin pip-installed (a real build: wheel, metadata, entry
    points), seeing notifierd from this checkout and its dependencies from the running venv."""
    workdir = tmp_path_factory.mktemp("plugin")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = workdir / "notifierd-webhook"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = workdir / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    )
    # The checkout first, then the dependencies; notifierd's own entry points as pyproject.toml
    # declares them (installing the checkout itself would need a newer setuptools).
    dependencies = sysconfig.get_paths()["purelib"]
    (site / "_notifierd_checkout.pth").write_text(f"{ROOT}\n{dependencies}\n", encoding="utf-8")
    write_dist_info(site, "notifierd", "0.1.0", declared_workers())
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--quiet", str(source)])  # fmt: skip
    return python


def run(command: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    fake = FakeWebhook()
    fake.start()
    yield fake
    fake.stop()


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
        worker = load_worker_class("webhook")
        print(json.dumps({
            "class": f"{worker.__module__}.{worker.__qualname__}",
            "names": installed_worker_names(),
            "error": error,
        }))
        """
    )
    found = json.loads(run([str(venv_python), "-c", script]))
    assert found["class"] == "notifierd_webhook.worker.WebhookWorker"
    assert {"email", "null", "sms", "webhook"} <= set(found["names"])
    assert found["error"] == f"unknown worker type 'nope'; installed: {', '.join(found['names'])}"


def test_installed_plugin_delivers(venv_python: Path, webhook: FakeWebhook) -> None:
    # What a worker process of a `webhook` channel does: look the type up, validate the
    # channel's params, open, send, close.
    script = textwrap.dedent(
        """
        import json, sys
        from notifierd.messages import Delivery
        from notifierd.workers.registry import load_worker_class
        spec = json.load(sys.stdin)
        worker_class = load_worker_class("webhook")
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
