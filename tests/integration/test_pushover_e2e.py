"""End to end through the daemon: the `pushover` worker against the fake Pushover API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.pushover import (
    APP_TOKEN,
    USER_KEY,
    FakePushover,
    OverLimit,
    pushover_error,
)
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
def fake() -> Iterator[FakePushover]:
    server = FakePushover()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakePushover, **params: Any) -> Daemon:
    settings = {
        "token": "${PUSHOVER_TOKEN}",
        "user_key": "${PUSHOVER_USER_KEY}",
        "api_url": fake.api_url,
        "timeout": 2,
        **params,
    }
    env = {"PUSHOVER_TOKEN": APP_TOKEN, "PUSHOVER_USER_KEY": USER_KEY}
    return make_daemon(channel_file("pushover", settings), env=env).start()


def test_the_text_and_title_arrive_as_written(
    make_daemon: DaemonFactory, fake: FakePushover
) -> None:
    daemon = start(make_daemon, fake, title="Сбой 🔥", priority=1)

    assert daemon.send("out", TEXT).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert (message.message, message.title, message.priority) == (TEXT, "Сбой 🔥", "1")


def test_1024_characters_go_and_1025_are_refused_at_intake(
    make_daemon: DaemonFactory, fake: FakePushover
) -> None:
    daemon = start(make_daemon, fake)

    refused = daemon.send("out", "🔥" * 1025)
    assert daemon.send("out", "🔥" * 1024).status_code == 204

    assert refused.status_code == 422
    assert "1025 characters long; this channel accepts at most 1024" in refused.text
    settled(daemon)
    assert [len(m.message) for m in fake.messages] == [1024]


def test_the_monthly_limit_waits_until_it_resets_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakePushover
) -> None:
    fake.script(OverLimit(reset_in=2))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    # X-Limit-App-Reset is whole seconds: the wait is 1.5 to 2.5 s.
    assert 1.4 <= accepted.at - limited.at < 3.0
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert logged["outcome"] == "rate_limited"
    assert "monthly message limit" in logged["error"]


@pytest.mark.parametrize(
    ("field", "error"),
    [("token", "application token is invalid"), ("user_key", "user identifier is invalid")],
)
def test_a_bad_key_holds_deliveries_until_pushover_accepts_it(
    make_daemon: DaemonFactory, fake: FakePushover, field: str, error: str
) -> None:
    setattr(fake, field, "zz-revoked-00000000000000000000")
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(f"pushover: HTTP 400: {error}: check")
    assert fake.messages == []

    fake.token, fake.user_key = APP_TOKEN, USER_KEY
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [m.message for m in fake.messages] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_pushovers_errors(
    make_daemon: DaemonFactory, fake: FakePushover
) -> None:
    fake.script(pushover_error(400, "sound is invalid", sound="invalid"))
    daemon = start(make_daemon, fake, sound="nope")

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "pushover: HTTP 400: sound is invalid",
    )


def test_the_keys_show_nowhere(make_daemon: DaemonFactory, fake: FakePushover) -> None:
    fake.script(Raw(502, f"<html>bad gateway {APP_TOKEN} {USER_KEY}</html>"), Reset())
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.messages) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        for secret in (APP_TOKEN, USER_KEY):
            assert secret not in text, f"a key shows in {where}"
    assert "bad gateway *** ***</html>" in shown["log"]
