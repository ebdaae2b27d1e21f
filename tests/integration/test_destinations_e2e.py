"""End to end through the daemon: each chat and push destination, and the generic webhook,
against the fake of its service, in the scenarios issue 18 asks of every one (`Destination`
says what each expects), then the checks only one destination has."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.matrix import FakeMatrix, StoreThen
from tests.fakes.server import Reset
from tests.integration.chat_destinations import CHAT_DESTINATIONS, DISCORD
from tests.integration.conftest import DaemonFactory
from tests.integration.destinations import (
    TEXT,
    BadSecret,
    Destination,
    Fake,
    RateCase,
    attempt_lines,
    everything_shown,
    queued_misconfigured,
    settled,
)
from tests.integration.push_destinations import MATRIX, PUSH_DESTINATIONS
from tests.integration.webhook_destinations import WEBHOOK_DESTINATIONS

DESTINATIONS = CHAT_DESTINATIONS + PUSH_DESTINATIONS + WEBHOOK_DESTINATIONS


def cases(having: Callable[[Destination], object]) -> list[Any]:
    """The destinations with a case for a scenario, as pytest params named by their id."""
    return [pytest.param(d, id=d.id) for d in DESTINATIONS if having(d)]


@pytest.fixture
def fake(destination: Destination) -> Iterator[Fake]:
    """The destination's fake, running. Tests ask for it before `make_daemon`, so that the
    daemon stops first and no connection of its outlives the fake."""
    with destination.running() as server:
        yield server


@pytest.mark.parametrize("destination", cases(lambda d: d.text))
def test_the_text_arrives_as_written(
    destination: Destination, fake: Fake, make_daemon: DaemonFactory
) -> None:
    case = destination.text
    assert case is not None
    daemon = destination.start(make_daemon, fake, **case.params)

    assert daemon.send("out", case.message).status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    case.check(fake, case.message)


@pytest.mark.parametrize("destination", cases(lambda d: d.length))
def test_the_longest_text_goes_and_a_longer_one_is_refused_at_intake(
    destination: Destination, fake: Fake, make_daemon: DaemonFactory
) -> None:
    case = destination.length
    assert case is not None
    daemon = destination.start(make_daemon, fake)

    refused = daemon.send("out", case.refused)
    assert refused.status_code == 422
    assert case.reason in refused.text
    if case.longest is not None:
        assert daemon.send("out", case.longest).status_code == 204
        settled(daemon)
        assert destination.delivered(fake) == [case.longest]


@pytest.mark.parametrize(
    ("destination", "case"),
    [
        pytest.param(d, case, id=f"{d.id}-{case.id}" if case.id else d.id)
        for d in DESTINATIONS
        for case in d.limits
    ],
)
def test_a_rate_limit_waits_the_services_hint_without_charging_an_attempt(
    destination: Destination, fake: Fake, case: RateCase, make_daemon: DaemonFactory
) -> None:
    fake.script(case.reply)
    daemon = destination.start(make_daemon, fake)

    assert daemon.send("out", "slow down").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    limited, accepted = fake.requests
    low, high = case.wait
    assert low <= accepted.at - limited.at < high
    [logged, _] = attempt_lines(daemon, row["id"], 2)
    assert logged["outcome"] == "rate_limited"
    if case.retry_after is not None:
        assert logged["retry_after"] == case.retry_after
    if case.error is not None:
        assert case.error in logged["error"]


@pytest.mark.parametrize(
    ("destination", "case"),
    [
        pytest.param(d, case, id=f"{d.id}-{case.id}" if case.id else d.id)
        for d in DESTINATIONS
        for case in d.bad_secrets
    ],
)
def test_a_bad_secret_holds_deliveries_until_the_service_accepts_it(
    destination: Destination, fake: Fake, case: BadSecret, make_daemon: DaemonFactory
) -> None:
    case.spoil(fake)
    daemon = destination.start(make_daemon, fake)

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert row["last_error"].startswith(case.error)
    assert destination.delivered(fake) == []

    case.mend(fake)
    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert destination.delivered(fake) == ["held"]
    assert daemon.channel_status("out")["state"] == "running"


@pytest.mark.parametrize("destination", cases(lambda d: d.refusal))
def test_a_refused_message_fails_with_the_services_error(
    destination: Destination, fake: Fake, make_daemon: DaemonFactory
) -> None:
    case = destination.refusal
    assert case is not None
    fake.script(case.reply)
    daemon = destination.start(make_daemon, fake, **case.params)

    assert daemon.send("out", "refused").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 1, case.error)


@pytest.mark.parametrize("destination", cases(lambda d: d.hidden))
def test_the_secret_shows_nowhere(
    destination: Destination, fake: Fake, make_daemon: DaemonFactory
) -> None:
    case = destination.hidden
    assert case is not None
    fake.script(*case.replies(fake))
    daemon = destination.start(make_daemon, fake)

    for number in range(3):
        assert daemon.send("out", f"message {number}").status_code == 204

    settled(daemon, 3)
    assert len(destination.delivered(fake)) == 3
    shown = everything_shown(daemon)
    for where, text in shown.items():
        for secret in case.secrets:
            assert secret not in text, f"a secret shows in {where}"
    assert case.logged in shown["log"]


# --- What only one destination does -----------------------------------------------------------


@pytest.mark.parametrize("destination", [DISCORD], ids=["discord"])
def test_discord_at_everyone_in_the_text_pings_no_one(
    destination: Destination, fake: FakeDiscord, make_daemon: DaemonFactory
) -> None:
    daemon = destination.start(make_daemon, fake, username="Алерты")
    text = "@everyone " + TEXT

    assert daemon.send("out", text).status_code == 204

    [row] = settled(daemon, 1)
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [message] = fake.messages
    assert message.content == text
    assert message.payload["allowed_mentions"] == {"parse": []}
    assert message.payload["username"] == "Алерты"
    assert message.mention_everyone is False


@pytest.mark.parametrize("destination", [MATRIX], ids=["matrix"])
def test_matrix_a_retry_after_a_reset_connection_posts_the_event_once(
    destination: Destination, fake: FakeMatrix, make_daemon: DaemonFactory
) -> None:
    # The homeserver stored the event, but the answer never came back.
    fake.script(StoreThen(Reset()))
    daemon = destination.start(make_daemon, fake)

    assert daemon.send("out", "once").status_code == 204

    [row] = settled(daemon)
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    first, retry = fake.requests
    assert first.path == retry.path  # the same transaction id
    assert [event.content["body"] for event in fake.events] == ["once"]


@pytest.mark.parametrize("destination", [MATRIX], ids=["matrix"])
def test_matrix_another_delivery_of_the_same_text_gets_a_transaction_of_its_own(
    destination: Destination, fake: FakeMatrix, make_daemon: DaemonFactory
) -> None:
    daemon = destination.start(make_daemon, fake)

    assert daemon.send("out", "twice").status_code == 204
    assert daemon.send("out", "twice").status_code == 204

    settled(daemon, 2)
    assert len({request.path for request in fake.requests}) == 2
    assert [event.content["body"] for event in fake.events] == ["twice", "twice"]


@pytest.mark.parametrize("destination", [MATRIX], ids=["matrix"])
def test_matrix_a_room_the_user_is_not_in_is_a_misconfiguration(
    destination: Destination, fake: FakeMatrix, make_daemon: DaemonFactory
) -> None:
    daemon = destination.start(make_daemon, fake, room_id="!elsewhere:example.org")

    assert daemon.send("out", "held").status_code == 204

    row = queued_misconfigured(daemon)
    assert (
        "M_FORBIDDEN: User @alerts:example.org not in room !elsewhere:example.org"
        in row["last_error"]
    )
