"""End to end through the daemon: the `slack` worker, by incoming webhook and by
chat.postMessage, against the fake Slack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.server import Raw, Reset
from tests.fakes.slack import (
    BOT_TOKEN,
    CHANNEL_ID,
    WEBHOOK_SECRET,
    FakeSlack,
    api_error,
    shown,
    webhook_error,
)
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

MODES = ["webhook", "bot"]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeSlack, mode: str) -> Daemon:
    common = {"timeout": 2, "rate_per_second": None}
    if mode == "webhook":
        params: dict[str, Any] = {"webhook_url": "${SLACK_SECRET}", **common}
        secret = fake.webhook_url
    else:
        params = {"token": "${SLACK_SECRET}", "channel_id": CHANNEL_ID, **common}
        params["api_url"] = fake.api_url
        secret = BOT_TOKEN
    return make_daemon(channel_file("slack", params), env={"SLACK_SECRET": secret}).start()


@pytest.mark.parametrize("mode", MODES)
def test_the_text_is_shown_as_written(
    make_daemon: DaemonFactory, fake: FakeSlack, mode: str
) -> None:
    daemon = start(make_daemon, fake, mode)
    # Unescaped, <!channel> would notify everyone and <http://x|y> would be a link.
    text = TEXT + "\n<!channel> <http://evil.example|docs> a&b"

    assert daemon.send("out", text).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert "&lt;!channel&gt;" in message.text and "a&amp;b" in message.text
    assert shown(message.text) == text
    if mode == "bot":
        assert message.channel == CHANNEL_ID


@pytest.mark.parametrize(
    ("mode", "limit"),
    [
        ("webhook", webhook_error(429, "rate_limited", retry_after=2)),
        ("bot", api_error("ratelimited", status=429, retry_after=2)),
    ],
)
def test_a_429_waits_its_retry_after_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeSlack, mode: str, limit: Raw
) -> None:
    fake.script(limit)
    daemon = start(make_daemon, fake, mode)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 2.0 <= accepted.at - limited.at < 2.5
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 2)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("webhook", "slack: HTTP 403: invalid_token"),
        ("bot", "slack: chat.postMessage: invalid_auth"),
    ],
)
def test_a_bad_secret_holds_deliveries_until_slack_accepts_it(
    make_daemon: DaemonFactory, fake: FakeSlack, mode: str, error: str
) -> None:
    fake.webhook_secret = fake.bot_token = "revoked-0000"
    daemon = start(make_daemon, fake, mode)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(error + ": check params.")
    assert fake.messages == []

    fake.webhook_secret, fake.bot_token = WEBHOOK_SECRET, BOT_TOKEN
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [m.text for m in fake.messages] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


@pytest.mark.parametrize(
    ("mode", "refusal", "error"),
    [
        ("webhook", webhook_error(400, "invalid_payload"), "slack: HTTP 400: invalid_payload"),
        ("bot", api_error("msg_too_long"), "slack: chat.postMessage: msg_too_long"),
    ],
)
def test_a_refused_message_fails_with_slacks_error(
    make_daemon: DaemonFactory, fake: FakeSlack, mode: str, refusal: Raw, error: str
) -> None:
    fake.script(refusal)
    daemon = start(make_daemon, fake, mode)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 1, error)


def test_a_text_past_40000_characters_once_escaped_is_refused_at_intake(
    make_daemon: DaemonFactory, fake: FakeSlack
) -> None:
    daemon = start(make_daemon, fake, "bot")

    refused = daemon.send("out", "<" * 10_001)  # 40,004 once escaped

    assert refused.status_code == 422
    assert "40004 characters once & < > are escaped" in refused.text


@pytest.mark.parametrize("mode", MODES)
def test_the_secret_shows_nowhere(make_daemon: DaemonFactory, fake: FakeSlack, mode: str) -> None:
    quoted = fake.webhook_url if mode == "webhook" else BOT_TOKEN
    fake.script(
        Raw(502, f"<html>bad gateway {quoted}</html>"),
        Reset(),
        webhook_error(429, "rate_limited", retry_after=0.2),
    )
    daemon = start(make_daemon, fake, mode)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.messages) == 3
    secret = WEBHOOK_SECRET if mode == "webhook" else BOT_TOKEN
    shown_texts = everything_shown(daemon)
    for where, text in shown_texts.items():
        assert secret not in text, f"the secret shows in {where}"
    assert "bad gateway ***</html>" in shown_texts["log"]
