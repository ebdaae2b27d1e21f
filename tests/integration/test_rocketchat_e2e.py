"""End to end through the daemon: the `rocketchat` worker against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.rocketchat import TOKEN, FakeRocketChat, TooManyRequests, failure
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
def fake() -> Iterator[FakeRocketChat]:
    server = FakeRocketChat()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeRocketChat, **params: Any) -> Daemon:
    settings = {"webhook_url": "${ROCKETCHAT_WEBHOOK_URL}", "timeout": 2, **params}
    env = {"ROCKETCHAT_WEBHOOK_URL": fake.webhook_url}
    return make_daemon(channel_file("rocketchat", settings), env=env).start()


def test_the_text_arrives_as_written(make_daemon: DaemonFactory, fake: FakeRocketChat) -> None:
    daemon = start(make_daemon, fake, alias="Алерты", emoji=":bell:")

    assert daemon.send("out", TEXT).status_code == 204
    refused = daemon.send("out", "🔥" * 5001)

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert message.payload == {"text": TEXT, "alias": "Алерты", "emoji": ":bell:"}
    assert refused.status_code == 422
    assert "5001 characters long; this channel accepts at most 5000" in refused.text


def test_a_429_waits_until_the_limiter_resets_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeRocketChat
) -> None:
    fake.script(TooManyRequests(2))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 1.9 <= accepted.at - limited.at < 2.6
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert logged["outcome"] == "rate_limited"
    assert "[error-too-many-requests]" in logged["error"]


def test_a_bad_token_holds_deliveries_until_rocketchat_accepts_it(
    make_daemon: DaemonFactory, fake: FakeRocketChat
) -> None:
    fake.token = "regenerated00000000000000000000"
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(
        "rocketchat: HTTP 400: Invalid integration id or token provided.: check"
    )
    assert fake.messages == []

    fake.token = TOKEN
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [m.text for m in fake.messages] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_rocketchats_error(
    make_daemon: DaemonFactory, fake: FakeRocketChat
) -> None:
    fake.script(failure(400, "error-message-size-exceeded"))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "rocketchat: HTTP 400: error-message-size-exceeded",
    )


def test_the_token_shows_nowhere(make_daemon: DaemonFactory, fake: FakeRocketChat) -> None:
    fake.script(Raw(502, f"<html>bad gateway {fake.webhook_url}</html>"), Reset())
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.messages) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert TOKEN not in text, f"the token shows in {where}"
    assert "bad gateway ***</html>" in shown["log"]
