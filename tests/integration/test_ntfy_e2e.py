"""End to end through the daemon: the `ntfy` worker against the fake ntfy server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.ntfy import PASSWORD, TOKEN, USERNAME, FakeNtfy, ntfy_error
from tests.fakes.server import Raw, Reset
from tests.harness import Daemon
from tests.integration.conftest import DaemonFactory
from tests.integration.destinations import (
    TEXT,
    attempt_lines,
    channel_file,
    everything_shown,
    queued_misconfigured,
    settled,
)

LOGINS = {
    "token": ({"token": "${NTFY_SECRET}"}, TOKEN),
    "basic": ({"username": USERNAME, "password": "${NTFY_SECRET}"}, PASSWORD),
}


@pytest.fixture
def fake() -> Iterator[FakeNtfy]:
    server = FakeNtfy()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeNtfy, login: str, **params: Any) -> Daemon:
    auth, secret = LOGINS[login]
    settings = {"server": fake.base_url, "topic": "ops-alerts", "timeout": 2, **auth, **params}
    return make_daemon(channel_file("ntfy", settings), env={"NTFY_SECRET": secret}).start()


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_the_text_and_a_unicode_title_arrive_as_written(
    make_daemon: DaemonFactory, fake: FakeNtfy, login: str
) -> None:
    daemon = start(
        make_daemon, fake, login, title="Сбой 🔥", priority="high", tags=["warning", "db"]
    )

    assert daemon.send("out", TEXT).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert message == type(message)("ops-alerts", TEXT, "Сбой 🔥", 4, ("warning", "db"))


def test_4096_bytes_go_and_4097_are_refused_at_intake(
    make_daemon: DaemonFactory, fake: FakeNtfy
) -> None:
    daemon = start(make_daemon, fake, "token")

    refused = daemon.send("out", "🔥" * 1024 + "!")  # four bytes each
    assert daemon.send("out", "🔥" * 1024).status_code == 204

    assert refused.status_code == 422
    assert "4097 bytes of UTF-8 long; this channel accepts at most 4096" in refused.text
    settled(daemon)
    assert [len(m.message) for m in fake.messages] == [1024]


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        pytest.param({}, 0.2, id="ntfy names no time: the channel's retry delay"),
        pytest.param({"Retry-After": "2"}, 2.0, id="a proxy's Retry-After"),
    ],
)
def test_a_429_is_retried_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeNtfy, headers: dict[str, str], wait: float
) -> None:
    fake.script(ntfy_error(429, 42901, "limit reached: too many requests", headers))
    daemon = start(make_daemon, fake, "token")

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert wait <= accepted.at - limited.at < wait + 0.5
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert logged["outcome"] == "rate_limited"
    assert "ntfy: HTTP 429: limit reached: too many requests (code 42901)" in logged["error"]


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_a_bad_login_holds_deliveries_until_ntfy_accepts_it(
    make_daemon: DaemonFactory, fake: FakeNtfy, login: str
) -> None:
    fake.token, fake.login = "tk_revoked00000000000000000000", (USERNAME, "old-password")
    daemon = start(make_daemon, fake, login)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith("ntfy: HTTP 401: unauthorized (code 40101): check")
    assert fake.messages == []

    fake.token, fake.login = TOKEN, (USERNAME, PASSWORD)
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [m.message for m in fake.messages] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_ntfys_error(
    make_daemon: DaemonFactory, fake: FakeNtfy
) -> None:
    fake.script(ntfy_error(400, 40007, "invalid request: priority invalid"))
    daemon = start(make_daemon, fake, "token")

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "ntfy: HTTP 400: invalid request: priority invalid (code 40007)",
    )


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_the_secret_shows_nowhere(make_daemon: DaemonFactory, fake: FakeNtfy, login: str) -> None:
    secret = LOGINS[login][1]
    fake.script(
        Raw(502, f"<html>bad gateway {secret}</html>"),
        Reset(),
        ntfy_error(429, 42901, "limit reached: too many requests"),
    )
    daemon = start(make_daemon, fake, login)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.messages) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert secret not in text, f"the secret shows in {where}"
    assert "bad gateway ***</html>" in shown["log"]
