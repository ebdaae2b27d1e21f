"""End to end through the daemon: the `gotify` worker against the fake Gotify server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.gotify import APP_TOKEN, UNAUTHORIZED, FakeGotify, gotify_error
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


@pytest.fixture
def fake() -> Iterator[FakeGotify]:
    server = FakeGotify()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeGotify, **params: Any) -> Daemon:
    settings = {"server": fake.base_url, "token": "${GOTIFY_TOKEN}", "timeout": 2, **params}
    return make_daemon(channel_file("gotify", settings), env={"GOTIFY_TOKEN": APP_TOKEN}).start()


def test_the_text_and_title_arrive_as_written(make_daemon: DaemonFactory, fake: FakeGotify) -> None:
    daemon = start(make_daemon, fake, title="Сбой 🔥", priority=8, markdown=True)

    assert daemon.send("out", TEXT).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert (message.message, message.title, message.priority) == (TEXT, "Сбой 🔥", 8)
    assert message.extras == {"client::display": {"contentType": "text/markdown"}}


def test_a_proxys_429_waits_its_retry_after_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeGotify
) -> None:
    fake.script(Raw(429, "Too Many Requests", "text/plain", {"Retry-After": "2"}))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 2.0 <= accepted.at - limited.at < 2.5
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 2)


def test_a_bad_token_holds_deliveries_until_gotify_accepts_it(
    make_daemon: DaemonFactory, fake: FakeGotify
) -> None:
    fake.token = "AOld.Token.00000"
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(f"gotify: HTTP 401: Unauthorized: {UNAUTHORIZED}: check")
    assert fake.messages == []

    fake.token = APP_TOKEN
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [m.message for m in fake.messages] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_gotifys_description(
    make_daemon: DaemonFactory, fake: FakeGotify
) -> None:
    fake.script(gotify_error(400, "Field 'message' is required"))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "gotify: HTTP 400: Bad Request: Field 'message' is required",
    )


def test_the_token_shows_nowhere(make_daemon: DaemonFactory, fake: FakeGotify) -> None:
    fake.script(Raw(502, f"<html>bad gateway {APP_TOKEN}</html>"), Reset())
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.messages) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert APP_TOKEN not in text, f"the token shows in {where}"
    assert "bad gateway ***</html>" in shown["log"]
