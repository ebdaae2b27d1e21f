"""End to end through the daemon: the `teams` worker against the fake Teams webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.server import Raw, Reset
from tests.fakes.teams import SIGNATURE, FakeTeams, teams_error, throttled
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
def fake() -> Iterator[FakeTeams]:
    server = FakeTeams()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeTeams, **params: Any) -> Daemon:
    url = fake.connector_url if params.get("format") == "connector" else fake.workflow_url
    settings = {"webhook_url": "${TEAMS_WEBHOOK_URL}", "timeout": 2, **params}
    env = {"TEAMS_WEBHOOK_URL": url}
    return make_daemon(channel_file("teams", settings), env=env).start()


@pytest.mark.parametrize("fmt", ["card", "connector"])
def test_the_text_arrives_as_written(make_daemon: DaemonFactory, fake: FakeTeams, fmt: str) -> None:
    daemon = start(make_daemon, fake, format=fmt)

    assert daemon.send("out", TEXT).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert fake.texts == [TEXT]
    if fmt == "card":
        [payload] = fake.payloads
        [block] = payload["attachments"][0]["content"]["body"]
        assert block == {"type": "TextBlock", "text": TEXT, "wrap": True}


def test_a_throttled_workflow_waits_its_retry_after_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeTeams
) -> None:
    fake.script(throttled(2))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 2.0 <= accepted.at - limited.at < 2.5
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 2)


def test_a_bad_signature_holds_deliveries_until_the_workflow_accepts_it(
    make_daemon: DaemonFactory, fake: FakeTeams
) -> None:
    fake.signature = "regenerated-0000000000000000"
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(
        "teams: HTTP 401: DirectApiAuthorizationRequired: The request must be authenticated"
    )
    assert fake.texts == []

    fake.signature = SIGNATURE
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert fake.texts == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_refused_message_fails_with_teams_error(
    make_daemon: DaemonFactory, fake: FakeTeams
) -> None:
    fake.script(teams_error(400, "InvalidRequestContent", "The input body is not valid."))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "teams: HTTP 400: InvalidRequestContent: The input body is not valid.",
    )


def test_the_signature_shows_nowhere(make_daemon: DaemonFactory, fake: FakeTeams) -> None:
    fake.script(Raw(502, f"<html>bad gateway sig={SIGNATURE}</html>"), Reset(), throttled(0))
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.texts) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert SIGNATURE not in text, f"the signature shows in {where}"
    assert "bad gateway sig=***</html>" in shown["log"]
