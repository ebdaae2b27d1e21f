"""What the end-to-end tests of the chat and push destinations (discord, slack, ...) share: a
one-channel file, waiting for deliveries to settle, every place the daemon shows text, and
`Destination`, one destination's fake, channel and what each scenario of
`test_destinations_e2e` expects of it (the cases are in `chat_destinations`,
`push_destinations` and `webhook_destinations`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
import yaml

from tests.fakes.server import ThreadedServer
from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory

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


# --- One destination, and what each scenario expects of it -----------------------------------

#: A running fake of a service (`FakeDiscord`, ...): the cases read its own attributes.
Fake = Any
#: What a channel of a destination is: its params (secrets as ${VAR}) and their environment.
Channel = Callable[[Fake], tuple[dict[str, Any], dict[str, str]]]
#: Asserts what the service got for a text.
Check = Callable[[Fake, str], None]


def setter(name: str, value: object) -> Callable[[Fake], None]:
    """Sets an attribute of the fake (the secret it accepts)."""
    return lambda fake: setattr(fake, name, value)


@dataclass(frozen=True)
class TextCase:
    """`message`, sent to a channel with `params`, arrives as `check(fake, message)` says."""

    check: Check
    params: dict[str, Any] = field(default_factory=dict)
    message: str = TEXT


@dataclass(frozen=True)
class LengthCase:
    """`longest` is delivered as it is; `refused` (one more) is refused at intake, the 422
    saying `reason`. No `longest`: only the refusal is checked."""

    refused: str
    reason: str
    longest: str | None = None


@dataclass(frozen=True)
class RateCase:
    """The service's rate-limit answer `reply`: the retry comes `wait` (low, high) seconds
    later, uncharged, and the attempt is logged with `retry_after` and/or `error` in it."""

    reply: object
    wait: tuple[float, float]
    retry_after: float | None = None
    error: str | None = None
    id: str = ""


@dataclass(frozen=True)
class BadSecret:
    """`spoil(fake)` makes the channel's secret wrong for the service: deliveries wait with the
    channel misconfigured, the error starting with `error`; after `mend(fake)` they go."""

    spoil: Callable[[Fake], None]
    mend: Callable[[Fake], None]
    error: str
    id: str = ""


@dataclass(frozen=True)
class Refusal:
    """`reply`, to a channel with `params`, fails the delivery with exactly `error`."""

    reply: object
    error: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hidden:
    """After the answers `replies(fake)` (which quote the secret), then three deliveries,
    none of `secrets` shows anywhere and the log has `logged` (the answer, redacted)."""

    replies: Callable[[Fake], list[object]]
    secrets: tuple[str, ...]
    logged: str


@dataclass(frozen=True)
class Destination:
    """A worker type against its fake: `channel(fake)` gives the params (secrets as ${VAR})
    and the environment; `delivered(fake)` the texts the service accepted, in order."""

    id: str
    worker: str
    fake: Callable[[], ThreadedServer]
    channel: Channel
    delivered: Callable[[Fake], list[str]]
    text: TextCase | None = None
    length: LengthCase | None = None
    limits: tuple[RateCase, ...] = ()
    bad_secrets: tuple[BadSecret, ...] = ()
    refusal: Refusal | None = None
    hidden: Hidden | None = None

    @contextmanager
    def running(self) -> Iterator[Fake]:
        server = self.fake()
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def start(self, make_daemon: DaemonFactory, fake: Fake, **params: Any) -> Daemon:
        settings, env = self.channel(fake)
        config = channel_file(self.worker, {**settings, **params})
        return make_daemon(config, env=env).start()
