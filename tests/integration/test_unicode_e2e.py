"""End to end through the daemon: the text people really send (emoji, symbols, Greek, CJK) is
accepted and arrives intact on every built-in worker type; what is not text is refused with a
422 that names the character and its position; a message too long for the remote is refused
with its length and the limit, counted the way that remote counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from tests.fakes.sms_gateway import FakeSmsGateway
from tests.fakes.smsru import FakeSmsRu
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi
from tests.fakes.tls import Certificate
from tests.fakes.twilio import FakeTwilio
from tests.harness import wait_for
from tests.integration.conftest import DaemonFactory
from tests.integration.test_sms_email_e2e import (
    GATEWAY_PASSWORD,
    GATEWAY_USER,
    SMTP_PASSWORD,
    SMTP_USER,
    Remote,
    channel_file,
    email_remote,
    gateway_remote,
    settled,
    smsru_remote,
    twilio_remote,
)

#: One line of a real alert, and a second one with Cyrillic and a tab. It fits one UCS-2 SMS.
ALERT = "🔥 disk full ✅ → ≥ 90% 250µs Ωμέγα 磁盘已满"
TEXT = f"{ALERT}\nдиск\tзаполнен"
NULL_CHANNEL = 'channels:\n  devnull:\n    worker: "null"\n'


def test_unicode_alert_is_delivered_intact_by_the_null_worker(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()

    response = daemon.send("devnull", TEXT)

    assert response.status_code == 204, response.text
    wait_for(
        lambda: [d for d in daemon.deliveries() if d["state"] == "delivered"],
        what="the delivery",
    )
    job = requests.get(daemon.url(f"/api/jobs/{response.headers['X-Job-Id']}"), timeout=10)
    assert job.json()["message"] == TEXT


def test_unicode_alert_is_delivered_intact_by_telegram(make_daemon: DaemonFactory) -> None:
    with FakeTelegramApi(token=TOKEN) as fake:
        daemon = make_daemon(telegram_channel(fake.url), env={"TELEGRAM_BOT_TOKEN": TOKEN}).start()

        assert daemon.send("tg", TEXT).status_code == 204

        fake.wait_for(lambda records: any(r.accepted for r in records))
        [record] = fake.delivered(1001)
        assert record.text == TEXT
        assert "parse_mode" not in record.params


@pytest.fixture(params=["twilio", "smsru", "http", "email"])
def remote(request: pytest.FixtureRequest, certificate: Certificate) -> Iterator[Remote]:
    if request.param == "twilio":
        twilio = FakeTwilio()
        with running(twilio):
            yield twilio_remote(twilio)
    elif request.param == "smsru":
        smsru = FakeSmsRu()
        with running(smsru):
            yield smsru_remote(smsru)
    elif request.param == "http":
        gateway = FakeSmsGateway(username=GATEWAY_USER, password=GATEWAY_PASSWORD)
        with running(gateway):
            yield gateway_remote(gateway)
    else:
        smtp = FakeSmtp(certificate, username=SMTP_USER, password=SMTP_PASSWORD)
        with running(smtp):
            yield email_remote(smtp, certificate)


@contextmanager
def running(fake: FakeTwilio | FakeSmsRu | FakeSmsGateway | FakeSmtp) -> Iterator[None]:
    fake.start()
    try:
        yield
    finally:
        fake.stop()


def test_unicode_alert_is_delivered_intact_by_sms_and_email(
    make_daemon: DaemonFactory, remote: Remote
) -> None:
    daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

    response = daemon.send("out", TEXT)

    assert response.status_code == 204, response.text
    states = settled(daemon, len(remote.recipients))
    assert {d["state"] for d in states.values()} == {"delivered"}
    assert sorted(remote.received()) == sorted((to, TEXT) for to in remote.recipients)


def test_a_control_character_is_refused_naming_it_and_its_position(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()

    refused = daemon.send("devnull", "🔥 disk full\x07 beep")

    assert refused.status_code == 422
    body = refused.json()
    assert (body["code"], body["field"]) == ("message_rejected", "message")
    assert "U+0007 at position 12" in body["description"]
    assert daemon.deliveries() == []


def test_telegram_counts_characters_and_refuses_beyond_4096(make_daemon: DaemonFactory) -> None:
    with FakeTelegramApi(token=TOKEN) as fake:
        daemon = make_daemon(telegram_channel(fake.url), env={"TELEGRAM_BOT_TOKEN": TOKEN}).start()
        longest = "🔥" * 4096  # 4096 characters, 8192 UTF-16 units: Telegram takes it

        refused = daemon.send("tg", longest + "!")
        accepted = daemon.send("tg", longest)

        assert refused.status_code == 422
        assert refused.json()["description"] == (
            "message is 4097 characters long; this channel accepts at most 4096"
        )
        assert accepted.status_code == 204
        fake.wait_for(lambda records: any(r.accepted for r in records))
        [record] = fake.delivered(1001)
        assert record.text == longest


def test_sms_counts_an_emoji_as_two_ucs2_units(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    remote = twilio_remote(twilio)
    params = remote.params | {"max_parts": 1}
    daemon = make_daemon(channel_file("out", "sms", params), env={"SECRET": remote.secret})
    daemon.start()
    fits = "🔥" * 35  # 70 UTF-16 units: one SMS

    refused = daemon.send("out", fits + "!")
    accepted = daemon.send("out", fits)

    assert refused.status_code == 422
    assert refused.json()["description"] == (
        "message is 71 UTF-16 units long in UCS-2 (an emoji takes two) and needs 2 SMS parts "
        "of 67; this channel allows at most 1 (max_parts)"
    )
    assert accepted.status_code == 204
    settled(daemon, len(remote.recipients))
    assert {m.body for m in twilio.messages} == {fits}


def telegram_channel(api_url: str, **params: Any) -> str:
    all_params = {
        "token": "${TELEGRAM_BOT_TOKEN}",
        "chat_id": 1001,
        "api_url": api_url,
        "timeout": 2,
        "chat_interval": 0,
        **params,
    }
    return channel_file("tg", "telegram", all_params)
