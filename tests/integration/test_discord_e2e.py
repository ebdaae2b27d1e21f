"""End to end through the daemon: the `discord` worker against the fake Discord webhook."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.discord import (
    WEBHOOK_ID,
    WEBHOOK_TOKEN,
    FakeDiscord,
    invalid_form_body,
    rate_limited,
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
def fake() -> Iterator[FakeDiscord]:
    server = FakeDiscord()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeDiscord, **params: Any) -> Daemon:
    url = f"{fake.base_url}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
    config = channel_file(
        "discord",
        {"webhook_url": "${DISCORD_WEBHOOK}", "timeout": 2, "rate_per_second": None, **params},
    )
    return make_daemon(config, env={"DISCORD_WEBHOOK": url}).start()


def test_the_text_arrives_as_written_and_at_everyone_pings_no_one(
    make_daemon: DaemonFactory, fake: FakeDiscord
) -> None:
    daemon = start(make_daemon, fake, username="Алерты")
    text = "@everyone " + TEXT

    assert daemon.send("out", text).status_code == 204

    [row] = settled(daemon, 1)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert message.content == text
    assert message.payload["allowed_mentions"] == {"parse": []}
    assert message.payload["username"] == "Алерты"
    assert message.mention_everyone is False


def test_2000_characters_go_and_2001_are_refused_at_intake(
    make_daemon: DaemonFactory, fake: FakeDiscord
) -> None:
    daemon = start(make_daemon, fake)

    refused = daemon.send("out", "🔥" * 2001)
    assert daemon.send("out", "🔥" * 2000).status_code == 204

    assert refused.status_code == 422
    assert "2001 characters long; this channel accepts at most 2000" in refused.text
    settled(daemon, 1)
    assert [len(m.content) for m in fake.messages] == [2000]


def test_a_429_waits_its_retry_after_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeDiscord
) -> None:
    # The body's float retry_after (1.5 s) is meant, not the Retry-After header rounded up.
    fake.script(rate_limited(1.5))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon, 1)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 1.5 <= accepted.at - limited.at < 1.9
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 1.5)


def test_a_bad_webhook_token_holds_deliveries_until_discord_accepts_it(
    make_daemon: DaemonFactory, fake: FakeDiscord
) -> None:
    fake.token = "a-token-the-webhook-no-longer-has-0000"
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert "discord: HTTP 401: Invalid Webhook Token (code 50027)" in row["last_error"]
    assert "set params.webhook_url of channel 'out'" in row["last_error"]
    assert fake.messages == []

    fake.token = WEBHOOK_TOKEN
    [row] = settled(daemon, 1)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [m.content for m in fake.messages] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_discords_error(
    make_daemon: DaemonFactory, fake: FakeDiscord
) -> None:
    fake.script(invalid_form_body("embeds", "This field is required"))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon, 1)
    assert (row["state"], row["attempts"]) == ("failed", 1)
    assert row["last_error"] == (
        "discord: HTTP 400: Invalid Form Body (code 50035): embeds: This field is required"
    )


def test_the_webhook_url_shows_nowhere(make_daemon: DaemonFactory, fake: FakeDiscord) -> None:
    fake.script(
        Raw(502, f"<html>bad gateway for /api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}</html>"),
        Reset(),
        rate_limited(0.2),
        Raw(401, '{"message": "401: Unauthorized", "code": 0}', "application/json"),
    )
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.messages) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert WEBHOOK_TOKEN not in text, f"the webhook token shows in {where}"
    # The answer that quoted the webhook's path is logged, the path replaced.
    assert "discord: HTTP 502: <html>bad gateway for ***</html>" in shown["log"]
