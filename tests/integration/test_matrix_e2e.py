"""End to end through the daemon: the `matrix` worker against the fake homeserver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.matrix import (
    ACCESS_TOKEN,
    ROOM_ID,
    FakeMatrix,
    StoreThen,
    limit_exceeded,
    matrix_error,
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
def fake() -> Iterator[FakeMatrix]:
    server = FakeMatrix()
    server.start()
    yield server
    server.stop()


def start(make_daemon: DaemonFactory, fake: FakeMatrix, **params: Any) -> Daemon:
    settings = {
        "homeserver": fake.base_url,
        "access_token": "${MATRIX_ACCESS_TOKEN}",
        "room_id": ROOM_ID,
        "timeout": 2,
        **params,
    }
    env = {"MATRIX_ACCESS_TOKEN": ACCESS_TOKEN}
    return make_daemon(channel_file("matrix", settings), env=env).start()


def test_the_text_arrives_as_the_body_of_a_notice(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    daemon = start(make_daemon, fake, msgtype="notice")

    assert daemon.send("out", TEXT).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [event] = fake.events
    assert event.content == {"msgtype": "m.notice", "body": TEXT}


def test_a_retry_after_a_reset_connection_posts_the_event_once(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    # The homeserver stored the event, but the answer never came back.
    fake.script(StoreThen(Reset()))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "once").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    first, retry = fake.requests
    assert first.path == retry.path  # the same transaction id
    assert [event.content["body"] for event in fake.events] == ["once"]


def test_another_delivery_of_the_same_text_gets_a_transaction_of_its_own(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "twice").status_code == 204
    assert daemon.send("out", "twice").status_code == 204

    settled(daemon, 2)
    assert len({request.path for request in fake.requests}) == 2
    assert [event.content["body"] for event in fake.events] == ["twice", "twice"]


def test_m_limit_exceeded_waits_retry_after_ms_without_charging_an_attempt(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    fake.script(limit_exceeded(1500))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    assert 1.5 <= accepted.at - limited.at < 2.0
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 1.5)


def test_an_unknown_token_holds_deliveries_until_the_homeserver_accepts_it(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    fake.access_token = "syt_revoked_0000000000000000"
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(
        "matrix: HTTP 401: M_UNKNOWN_TOKEN: Invalid access token passed.: check"
    )
    assert fake.events == []

    fake.access_token = ACCESS_TOKEN
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [event.content["body"] for event in fake.events] == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


def test_a_room_the_user_is_not_in_is_a_misconfiguration(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    daemon = start(make_daemon, fake, room_id="!elsewhere:example.org")

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert (
        "M_FORBIDDEN: User @alerts:example.org not in room !elsewhere:example.org"
        in (row["last_error"])
    )


def test_a_refused_event_fails_with_the_homeservers_error(
    make_daemon: DaemonFactory, fake: FakeMatrix
) -> None:
    fake.script(matrix_error(413, "M_TOO_LARGE", "event too large"))
    daemon = start(make_daemon, fake)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "matrix: HTTP 413: M_TOO_LARGE: event too large",
    )


def test_the_access_token_shows_nowhere(make_daemon: DaemonFactory, fake: FakeMatrix) -> None:
    fake.script(
        Raw(502, f"<html>bad gateway {ACCESS_TOKEN}</html>"),
        Reset(),
        limit_exceeded(200),
    )
    daemon = start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(fake.events) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        assert ACCESS_TOKEN not in text, f"the access token shows in {where}"
    assert "bad gateway ***</html>" in shown["log"]
