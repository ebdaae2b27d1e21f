"""A third-party worker end to end: the example webhook package pip-installed into a fresh
virtual environment, the daemon run by that environment's python, a Cyrillic message POSTed
over HTTP arriving at the fake webhook."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.server import Raw
from tests.fakes.webhook import FakeWebhook
from tests.harness import BIN, wait_for
from tests.integration.conftest import DaemonFactory

TEXT = "Диск заполнен на 98 % — «db-1»\nВторая строка: ёЁ №5"
TOKEN = "hook-token-7b2e"


def hooks_channel(url: str, worker: str = "example-webhook") -> str:
    spec: dict[str, Any] = {
        "worker": worker,
        "retry": {"delay": 0.2, "max_attempts": 3, "jitter": 0},
        "params": {"url": url, "token": "${HOOK_TOKEN}", "recipients": ["ops", "дежурный"]},
    }
    return yaml.safe_dump({"channels": {"hooks": spec}}, allow_unicode=True)


def check_config(command: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOOK_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
    )


def test_the_plugin_is_known_only_where_it_is_installed(venv_python: Path, tmp_path: Path) -> None:
    config = tmp_path / "channels.yaml"
    config.write_text(hooks_channel("http://127.0.0.1:9/hook"), encoding="utf-8")

    in_plugin_venv = check_config([str(venv_python), "-m", "notifierd"], config)
    in_checkout_venv = check_config([str(BIN / "notifierd")], config)

    assert in_plugin_venv.returncode == 0, in_plugin_venv.stderr
    assert "hooks" in in_plugin_venv.stdout
    # Without the package the daemon does not know the type: the test above is not vacuous.
    assert in_checkout_venv.returncode == 2
    assert "unknown worker type 'example-webhook'" in in_checkout_venv.stderr

    config.write_text(hooks_channel("http://127.0.0.1:9/hook", "example-webhok"), encoding="utf-8")
    typo = check_config([str(venv_python), "-m", "notifierd"], config)
    assert typo.returncode == 2
    prefix = f"{config}: channels.hooks.worker: unknown worker type 'example-webhok'; installed: "
    line = next(line for line in typo.stderr.splitlines() if line.startswith(prefix))
    assert {"email", "example-webhook", "null", "sms", "telegram"} <= set(
        line.removeprefix(prefix).split(", ")
    )


def test_a_plugin_worker_delivers_through_the_daemon(
    make_daemon: DaemonFactory, venv_python: Path, webhook: FakeWebhook
) -> None:
    # The first request is answered 503: the plugin's temporary failure is retried too.
    webhook.script(Raw(503, "busy"))
    daemon = make_daemon(
        hooks_channel(f"{webhook.base_url}/notify"),
        env={"HOOK_TOKEN": TOKEN},
        command=[str(venv_python), "-m", "notifierd"],
    ).start()

    response = daemon.send("hooks", TEXT)

    assert response.status_code == 204, response.text

    def settled() -> list[dict[str, Any]] | None:
        found = daemon.deliveries(channel="hooks")
        done = len(found) == 2 and all(d["state"] == "delivered" for d in found)
        return found if done else None

    deliveries = wait_for(settled, timeout=20, what="both webhook deliveries")
    assert sorted(d["attempts"] for d in deliveries) == [1, 2]
    assert sorted(webhook.payloads, key=lambda p: p["recipient"]) == [
        {"channel": "hooks", "recipient": "ops", "message": TEXT},
        {"channel": "hooks", "recipient": "дежурный", "message": TEXT},
    ]
    assert len(webhook.requests) == 3
    for request in webhook.requests:
        assert request.path == "/notify"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert daemon.channel_status("hooks")["worker"] == "example-webhook"
