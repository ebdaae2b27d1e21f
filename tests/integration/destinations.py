"""What the end-to-end tests of the chat and push destinations (discord, slack, ...) share: a
one-channel file, waiting for deliveries to settle, and every place the daemon shows text."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import requests
import yaml

from tests.harness import BIN, Daemon, wait_for

FAST_RETRY: dict[str, Any] = {"delay": 0.2, "backoff": 2, "max_attempts": 3, "jitter": 0}
TERMINAL = {"delivered", "failed", "dead", "expired"}
#: Cyrillic, several lines (one ending \r\n), a tab, emoji with a joiner and a flag, and
#: characters that are markup somewhere.
TEXT = (
    "Сервер «db-1» недоступен — 3 попытки 🔥\n"
    "Вторая строка: ёЁ № 5 👩‍💻 🇺🇦\r\n"
    "\t* _x_ <b> & > 100% ✅"
)


def channel_file(worker: str, params: dict[str, Any], name: str = "out", **settings: Any) -> str:
    spec = {"worker": worker, "retry": FAST_RETRY, **settings, "params": params}
    return yaml.safe_dump({"channels": {name: spec}}, allow_unicode=True, sort_keys=False)


def settled(daemon: Daemon, count: int = 1, channel: str = "out") -> list[dict[str, Any]]:
    """The channel's `count` deliveries once all are in a terminal state, oldest first."""

    def check() -> list[dict[str, Any]] | None:
        rows = daemon.deliveries(channel=channel)
        if len(rows) == count and all(row["state"] in TERMINAL for row in rows):
            return sorted(rows, key=lambda row: row["id"])
        return None

    return wait_for(check, timeout=30, what=f"{count} settled deliveries on {channel}")


def queued_misconfigured(daemon: Daemon, channel: str = "out") -> dict[str, Any]:
    """The channel's one delivery, once it is back in the queue with the channel shown
    misconfigured; no attempt charged."""

    def check() -> dict[str, Any] | None:
        [row] = daemon.deliveries(channel=channel)
        status = daemon.channel_status(channel)
        if row["state"] == "queued" and status["state"] == "misconfigured":
            return row
        return None

    row = wait_for(check, timeout=20, what="the delivery queued, the channel misconfigured")
    assert row["attempts"] == 0
    return row


def attempt_lines(daemon: Daemon, delivery_id: int, count: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found = [
            e for e in daemon.events("delivery.attempt") if e.get("delivery_id") == delivery_id
        ]
        return found if len(found) >= count else None

    return wait_for(check, timeout=5, what=f"{count} attempts of delivery {delivery_id} logged")


def everything_shown(daemon: Daemon) -> dict[str, str]:
    """Each text the daemon shows an operator: its debug log, status, jobs, metrics, and what
    check-config prints."""
    check = subprocess.run(
        [str(BIN / "notifierd"), "check-config", "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **daemon.env},
    )
    assert check.returncode == 0, check.stderr
    return {
        "log": daemon.log.read_text(encoding="utf-8"),
        "status": daemon.ctl("status").stdout,
        "status --json": daemon.ctl("status", "--json").stdout,
        "jobs --json": daemon.ctl("jobs", "--json", "--limit", "100").stdout,
        "jobs --deliveries": daemon.ctl("jobs", "--deliveries", "--limit", "100").stdout,
        "metrics": requests.get(daemon.url("/metrics"), timeout=5).text,
        "check-config": check.stdout + check.stderr,
    }
