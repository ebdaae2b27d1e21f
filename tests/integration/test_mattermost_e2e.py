"""End to end through the daemon: the `mattermost` worker against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.mattermost import HOOK_ID, FakeMattermost, app_error, rate_limited
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
def fake() -> Iterator[FakeMattermost]:
    server = FakeMattermost()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeMattermost, **params: Any) -> Daemon:
    settings = {"webhook_url": "${MATTERMOST_WEBHOOK_URL}", "timeout": 2, **params}
    env = {"MATTERMOST_WEBHOOK_URL": fake.webhook_url}
    return make_daemon(channel_file("mattermost", settings), env=env).start()


def test_the_text_arrives_as_written(make_daemon: DaemonFactory, fake: FakeMattermost) -> None:
    daemon = start(make_daemon, fake, username="Алерты", channel="town-square")

    assert daemon.send("out", TEXT).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [post] = fake.posts
    assert post.payload == {"text": TEXT, "username": "Алерты", "channel": "town-square"}


def test_a_429_waits_its_retry_after_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeMattermost
) -> None:
    fake.script(rate_limited(2))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 2.0 <= accepted.at - limited.at < 2.5
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 2)


def test_an_unknown_webhook_holds_deliveries_until_mattermost_knows_it(
    make_daemon: DaemonFactory, fake: FakeMattermost
) -> None:
    fake.hook_id = "deleted0000000000000000000"
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(
        "mattermost: HTTP 400: Invalid webhook. (web.incoming_webhook.invalid.app_error): check"
    )
    assert fake.posts == []

    fake.hook_id = HOOK_ID
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [p.text for p in fake.posts] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_mattermosts_message(
    make_daemon: DaemonFactory, fake: FakeMattermost
) -> None:
    fake.script(app_error(400, "web.incoming_webhook.parse.app_error", "Unable to parse data."))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "mattermost: HTTP 400: Unable to parse data. (web.incoming_webhook.parse.app_error)",
    )


def test_the_webhook_url_shows_nowhere(make_daemon: DaemonFactory, fake: FakeMattermost) -> None:
    fake.script(Raw(502, f"<html>bad gateway {fake.webhook_url}</html>"), Reset())
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.posts) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert HOOK_ID not in text, f"the webhook's id shows in {where}"
    assert "bad gateway ***</html>" in shown["log"]
