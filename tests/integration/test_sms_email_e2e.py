"""End to end through the daemon: messages POSTed to `bin/notifierd` reach the fakes of Twilio,
SMS.ru, a generic HTTP SMS gateway and an SMTP server through real worker processes; refusals,
temporary failures, Retry-After and bad credentials have the effects the design promises."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import yaml

from tests.fakes.sms_gateway import TEST_PASSWORD, TEST_USERNAME, FakeSmsGateway, GatewayReply
from tests.fakes.smsru import DEFAULT_API_ID, FakeSmsRu
from tests.fakes.smtp import FakeSmtp
from tests.fakes.tls import Certificate
from tests.fakes.twilio import (
    ACCEPT,
    DEFAULT_SID,
    DEFAULT_TOKEN,
    FakeTwilio,
    rate_limited,
    server_error,
    twilio_error,
)
from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory

PHONES = ["+79251234567", "+79161234568", "+447700900123"]
ADDRESSES = ["ops@example.org", "дежурный@example.org", "boss@example.org"]
TEXT = "Сервер «db-1»: диск заполнен на 98 % — срочно!\nВторая строка: ёЁ, №5, «ёлочки» и “лапки”…"
FAST_RETRY = {"delay": 0.2, "max_attempts": 3, "jitter": 0}
GATEWAY_USER = TEST_USERNAME
SMTP_USER = "notifier@example.org"
SMTP_PASSWORD = "smtp-pass-5c1e"
GATEWAY_PASSWORD = TEST_PASSWORD
WRONG_SECRET = "wrong-secret-0000"
TERMINAL = {"delivered", "failed", "dead", "expired"}


def channel_file(name: str, worker: str, params: dict[str, Any], **settings: Any) -> str:
    spec = {"worker": worker, "retry": FAST_RETRY, **settings, "params": params}
    return yaml.safe_dump({"channels": {name: spec}}, allow_unicode=True, sort_keys=False)


# --- The remotes, behind one face -------------------------------------------------------------


@dataclass
class Remote:
    """A running fake and how a channel talks to it. `params` puts the channel's secret as
    `${SECRET}`, so that a test can give the daemon a wrong one through its environment."""

    name: str
    worker: str
    recipients: list[str]
    params: dict[str, Any]
    secret: str
    #: (recipient, text) of each message the remote accepted, in order.
    received: Callable[[], list[tuple[str, str]]]
    #: How many times the channel tried each recipient (requests, or RCPT TO).
    tries: Callable[[], Counter[str]]
    #: Make the next sends to a recipient fail permanently / temporarily (n times).
    refuse: Callable[[str], None]
    defer: Callable[[str, int], None]
    #: How many times the remote refused the channel's credentials, and what that looks like.
    logins_refused: Callable[[], int]
    login_error: str

    def config(self, name: str = "out", **settings: Any) -> str:
        return channel_file(name, self.worker, self.params, **settings)


def twilio_remote(fake: FakeTwilio) -> Remote:
    def tries() -> Counter[str]:
        return Counter(r.params.get("To", "") for r in fake.requests)

    return Remote(
        name="twilio",
        worker="sms",
        recipients=PHONES,
        params={
            "provider": "twilio",
            "account_sid": DEFAULT_SID,
            "auth_token": "${SECRET}",
            "sender": "+15005550006",
            "phones": PHONES,
            "base_url": fake.base_url,
            "timeout": 5,
        },
        secret=DEFAULT_TOKEN,
        received=lambda: [(m.to, m.body) for m in fake.messages],
        tries=tries,
        refuse=lambda phone: fake.script(phone, twilio_error(21614)),
        defer=lambda phone, times: fake.script(
            phone, *[server_error(503, 20503, recorded=False)] * times
        ),
        logins_refused=lambda: len(fake.requests),
        login_error="twilio: HTTP 401: error 20003: Authenticate",
    )


def smsru_remote(fake: FakeSmsRu) -> Remote:
    def tries() -> Counter[str]:
        return Counter("+" + r.params.get("to", "") for r in fake.requests)

    return Remote(
        name="smsru",
        worker="sms",
        recipients=PHONES,
        params={
            "provider": "smsru",
            "api_id": "${SECRET}",
            "phones": PHONES,
            "base_url": fake.base_url,
            "timeout": 5,
        },
        secret=DEFAULT_API_ID,
        received=lambda: [("+" + m.number, m.text) for m in fake.messages],
        tries=tries,
        refuse=lambda phone: fake.script(phone, 207),
        defer=lambda phone, times: fake.script(phone, *[220] * times),
        logins_refused=lambda: len(fake.requests),
        login_error="sms.ru: request: status 200: Неправильный api_id",
    )


def gateway_remote(fake: FakeSmsGateway) -> Remote:
    def tries() -> Counter[str]:
        return Counter(r.params.get("to", "") for r in fake.requests)

    return Remote(
        name="http",
        worker="sms",
        recipients=PHONES,
        params={
            "provider": "http",
            "method": "GET",
            "url": f"{fake.base_url}/cgi-bin/sendsms?username={{username}}"
            "&password={password}&to={phone}&text={message}&charset=UTF-8&coding=2",
            "username": GATEWAY_USER,
            "password": "${SECRET}",
            "success_status": [202],
            "phones": PHONES,
            "timeout": 5,
        },
        secret=GATEWAY_PASSWORD,
        received=lambda: [(m.phone, m.text) for m in fake.messages],
        tries=tries,
        refuse=lambda phone: fake.script(phone, GatewayReply(400, "Unknown receiver")),
        defer=lambda phone, times: fake.script(
            phone, *[GatewayReply(503, "Service unavailable")] * times
        ),
        logins_refused=lambda: len(fake.requests),
        login_error="sms gateway: HTTP 403: Authorization failed for sendsms",
    )


def email_remote(fake: FakeSmtp, certificate: Certificate) -> Remote:
    def received() -> list[tuple[str, str]]:
        # set_content() ends the text with a line break; the rest must be the message.
        return [(m.rcpt_tos[0], body_text(m.message).removesuffix("\n")) for m in fake.messages]

    return Remote(
        name="email",
        worker="email",
        recipients=ADDRESSES,
        params={
            "host": "127.0.0.1",
            "port": fake.port,
            "security": "starttls",
            "username": SMTP_USER,
            "password": "${SECRET}",
            "sender": "Оповещатель <notifier@example.org>",
            "to": ADDRESSES,
            "ca_file": str(certificate.cert),
            "timeout": 5,
        },
        secret=SMTP_PASSWORD,
        received=received,
        tries=lambda: Counter(fake.rcpts),
        refuse=lambda address: fake.script_rcpt(address, "550 5.1.1 No such user"),
        defer=lambda address, times: fake.script_rcpt(
            address, *["450 4.2.1 Mailbox busy, try later"] * times
        ),
        logins_refused=lambda: fake.failed_logins,
        login_error="smtp: login refused: 535",
    )


def body_text(message: EmailMessage) -> str:
    content = message.get_content()
    assert isinstance(content, str)
    return content


@pytest.fixture(params=["twilio", "smsru", "http", "email"])
def remote(request: pytest.FixtureRequest, certificate: Certificate) -> Iterator[Remote]:
    fake: FakeTwilio | FakeSmsRu | FakeSmsGateway | FakeSmtp
    if request.param == "twilio":
        fake = FakeTwilio()
        fake.start()
        yield twilio_remote(fake)
    elif request.param == "smsru":
        fake = FakeSmsRu()
        fake.start()
        yield smsru_remote(fake)
    elif request.param == "http":
        fake = FakeSmsGateway(username=GATEWAY_USER, password=GATEWAY_PASSWORD)
        fake.start()
        yield gateway_remote(fake)
    else:
        fake = FakeSmtp(certificate, username=SMTP_USER, password=SMTP_PASSWORD)
        fake.start()
        yield email_remote(fake, certificate)
    fake.stop()


def deliveries_by_recipient(daemon: Daemon, channel: str = "out") -> dict[str, dict[str, Any]]:
    return {d["recipient"]: d for d in daemon.deliveries(channel=channel)}


def settled(daemon: Daemon, count: int, channel: str = "out") -> dict[str, dict[str, Any]]:
    """Wait until `count` deliveries of the channel are in a terminal state."""

    def done() -> dict[str, dict[str, Any]] | None:
        found = deliveries_by_recipient(daemon, channel)
        if len(found) == count and all(d["state"] in TERMINAL for d in found.values()):
            return found
        return None

    return wait_for(done, timeout=20, what=f"{count} deliveries to settle")


# --- 1. Cyrillic arrives intact ---------------------------------------------------------------


def test_cyrillic_sms_arrives_byte_exact_at_twilio(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    remote = twilio_remote(twilio)
    daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

    response = daemon.send("out", TEXT)

    assert response.status_code == 204, response.text
    settled(daemon, 3)
    assert sorted(remote.received()) == sorted((phone, TEXT) for phone in PHONES)
    # The form body on the wire: UTF-8, percent-encoded, nothing transliterated or escaped.
    for request in twilio.requests:
        assert f"Body={quote_plus(TEXT)}" in request.body.decode("ascii")
        assert request.params["From"] == "+15005550006"


def test_cyrillic_sms_arrives_byte_exact_at_smsru(
    make_daemon: DaemonFactory, smsru: FakeSmsRu
) -> None:
    remote = smsru_remote(smsru)
    daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

    assert daemon.send("out", TEXT).status_code == 204

    states = settled(daemon, 3)
    assert {d["state"] for d in states.values()} == {"delivered"}
    assert sorted(remote.received()) == sorted((phone, TEXT) for phone in PHONES)
    for request in smsru.requests:
        assert request.method == "POST"
        assert f"msg={quote_plus(TEXT)}" in request.body.decode("ascii")
        assert request.params["json"] == "1"


@pytest.mark.parametrize(
    ("method", "body_format"), [("GET", None), ("POST", "json")], ids=["get-query", "post-json"]
)
def test_cyrillic_sms_arrives_byte_exact_at_an_http_gateway(
    make_daemon: DaemonFactory, gateway: FakeSmsGateway, method: str, body_format: str | None
) -> None:
    remote = gateway_remote(gateway)
    params = dict(remote.params)
    if body_format == "json":
        params |= {
            "method": "POST",
            "url": f"{gateway.base_url}/send",
            "body": '{"to": "{phone}", "text": "{message}", "username": "{username}",'
            ' "password": "{password}"}',
            "body_format": "json",
        }
    daemon = make_daemon(channel_file("out", "sms", params), env={"SECRET": remote.secret})
    daemon.start()

    assert daemon.send("out", TEXT).status_code == 204

    states = settled(daemon, 3)
    assert {d["state"] for d in states.values()} == {"delivered"}
    assert sorted(remote.received()) == sorted((phone, TEXT) for phone in PHONES)
    for request in gateway.requests:
        assert request.method == method
        if body_format == "json":
            # Raw UTF-8 in the JSON body, only the line break escaped.
            assert json.dumps(TEXT, ensure_ascii=False).encode() in request.body
        else:
            # The raw query string is percent-encoded UTF-8, decoded back to the same text.
            assert request.query["text"] == TEXT


def test_cyrillic_email_over_starttls_with_login(
    make_daemon: DaemonFactory, certificate: Certificate
) -> None:
    with FakeSmtp(certificate, username=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        remote = email_remote(smtp, certificate)
        daemon = make_daemon(remote.config("mail"), env={"SECRET": remote.secret}).start()

        assert daemon.send("mail", TEXT).status_code == 204

        states = settled(daemon, 3, channel="mail")
        assert {d["state"] for d in states.values()} == {"delivered"}
        assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(ADDRESSES)
        for received in smtp.messages:
            assert received.tls, "the message went before STARTTLS"
            assert received.login == SMTP_USER
            message = received.message
            assert body_text(message) == TEXT + "\n"
            assert message.get_content_type() == "text/plain"
            assert message.get_content_charset() == "utf-8"
            assert str(message["Subject"]) == "[mail] " + TEXT.splitlines()[0]
            assert str(message["From"]) == "Оповещатель <notifier@example.org>"
            head = received.raw.split(b"\r\n\r\n", 1)[0]
            if not received.rcpt_tos[0].isascii():
                # An internationalized address goes with SMTPUTF8 (the fake offers it), where
                # headers are UTF-8 as they are (RFC 6532): no encoded-words needed.
                assert "SMTPUTF8" in received.mail_options
                assert "Subject: [mail] Сервер «db-1»".encode() in head
                continue
            # Otherwise every header is ASCII: the Cyrillic is in RFC 2047 encoded-words.
            assert "SMTPUTF8" not in received.mail_options
            assert head.isascii()
            unfolded = re.sub(r"\r\n[ \t]", " ", head.decode("ascii"))
            subject = next(h for h in unfolded.split("\r\n") if h.startswith("Subject: "))
            words = decode_header(subject.removeprefix("Subject: "))
            assert any(charset == "utf-8" for _, charset in words), subject
            assert str(make_header(words)) == "[mail] " + TEXT.splitlines()[0]


# --- 2. Several recipients, one refused or deferred -------------------------------------------


def test_one_recipient_refused_permanently(make_daemon: DaemonFactory, remote: Remote) -> None:
    refused = remote.recipients[1]
    remote.refuse(refused)
    daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

    assert daemon.send("out", TEXT).status_code == 204

    states = settled(daemon, 3)
    assert states[refused]["state"] == "failed"
    assert states[refused]["attempts"] == 1
    assert states[refused]["last_error"]
    others = [r for r in remote.recipients if r != refused]
    assert [states[r]["state"] for r in others] == ["delivered", "delivered"]
    assert sorted(remote.received()) == sorted((r, TEXT) for r in others)
    # Nobody was tried twice: not the refused one, not the ones that have it.
    assert remote.tries() == Counter(remote.recipients)


def test_one_recipient_deferred_is_retried_without_holding_up_the_others(
    make_daemon: DaemonFactory, remote: Remote
) -> None:
    deferred = remote.recipients[0]
    remote.defer(deferred, 2)
    daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

    assert daemon.send("out", TEXT).status_code == 204

    states = settled(daemon, 3)
    assert {r: (d["state"], d["attempts"]) for r, d in states.items()} == {
        remote.recipients[0]: ("delivered", 3),
        remote.recipients[1]: ("delivered", 1),
        remote.recipients[2]: ("delivered", 1),
    }
    received = remote.received()
    # Each has it once; the deferred one last: its retries did not block the others.
    assert sorted(received) == sorted((r, TEXT) for r in remote.recipients)
    assert received[-1][0] == deferred
    assert remote.tries() == Counter({deferred: 3, **dict.fromkeys(remote.recipients[1:], 1)})


def test_an_address_the_server_cannot_take_fails_alone(
    make_daemon: DaemonFactory, certificate: Certificate
) -> None:
    # A server without SMTPUTF8 cannot take дежурный@: that one recipient is refused, the
    # channel itself is fine.
    with FakeSmtp(certificate, username=SMTP_USER, password=SMTP_PASSWORD, smtputf8=False) as smtp:
        remote = email_remote(smtp, certificate)
        daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

        assert daemon.send("out", TEXT).status_code == 204

        states = settled(daemon, 3)
        international = ADDRESSES[1]
        assert states[international]["state"] == "failed"
        assert "SMTPUTF8" in states[international]["last_error"]
        assert sorted(remote.received()) == sorted(
            (a, TEXT) for a in ADDRESSES if a != international
        )
        assert daemon.channel_status("out")["state"] == "running"


# --- 3. Retry-After cools the whole channel down ----------------------------------------------


def test_twilio_429_retry_after_cools_the_channel_down(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    retry_after = 2
    limited = PHONES[0]
    twilio.script(limited, rate_limited(retry_after=retry_after), ACCEPT)
    remote = twilio_remote(twilio)
    daemon = make_daemon(remote.config(processes=1), env={"SECRET": remote.secret}).start()

    response = daemon.send("out", TEXT)
    assert response.status_code == 204
    job_id = int(response.headers["X-Job-Id"])
    wait_for(
        lambda: any(r.params["To"] == limited for r in twilio.requests), what="the limited send"
    )
    # A second message while the channel cools down waits as well.
    assert daemon.send("out", "второе сообщение").status_code == 204

    def all_delivered() -> list[dict[str, Any]] | None:
        found = daemon.deliveries(state="delivered")
        return found if len(found) == 6 else None

    states = wait_for(all_delivered, timeout=20, what="all six deliveries")
    first = next(i for i, r in enumerate(twilio.requests) if r.params["To"] == limited)
    refused_at = twilio.requests[first].at
    later = twilio.requests[first + 1 :]
    assert later, "nothing was sent after the 429"
    pauses = [round(r.at - refused_at, 3) for r in later]
    assert min(pauses) >= retry_after - 0.05, f"sent {pauses} s after a 429 of {retry_after} s"
    assert Counter(m.to for m in twilio.messages) == Counter(PHONES * 2)
    [retried] = [d for d in states if d["recipient"] == limited and d["job_id"] == job_id]
    assert retried["attempts"] == 1  # a 429 is not a failed attempt


# --- 4. Bad credentials: misconfigured, nothing charged, delivered once fixed -----------------


def test_bad_credentials_hold_deliveries_until_the_config_is_fixed(
    make_daemon: DaemonFactory, remote: Remote
) -> None:
    daemon = make_daemon(remote.config(), env={"SECRET": WRONG_SECRET}).start()

    assert daemon.send("out", TEXT).status_code == 204

    # More refusals than max_attempts (3): a charged attempt would have made them dead.
    wait_for(lambda: remote.logins_refused() >= 4, timeout=20, what="repeated login refusals")

    def held() -> list[dict[str, Any]] | None:
        found = daemon.deliveries(channel="out")
        return found if all(d["state"] == "queued" for d in found) else None

    deliveries = wait_for(held, what="the deliveries back in the queue")
    assert len(deliveries) == 3
    assert {d["attempts"] for d in deliveries} == {0}
    status = daemon.channel_status("out")
    assert status["state"] == "misconfigured"
    assert remote.login_error in status["last_error"]
    table = daemon.ctl("status")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("out "))
    assert "misconfigured" in row and remote.login_error in row
    assert WRONG_SECRET not in table.stdout
    assert remote.received() == []

    assert daemon.terminate() == 0
    daemon.env["SECRET"] = remote.secret
    daemon.start()

    states = settled(daemon, 3)
    outcome = {r: (d["state"], d["attempts"]) for r, d in states.items()}
    assert outcome == dict.fromkeys(remote.recipients, ("delivered", 1))
    assert sorted(remote.received()) == sorted((r, TEXT) for r in remote.recipients)
    assert daemon.channel_status("out")["state"] == "running"


@pytest.mark.parametrize(
    "remote",
    [
        "twilio",
        "smsru",
        "http",
        "email",
    ],
    indirect=True,
)
def test_secrets_stay_out_of_the_debug_log(make_daemon: DaemonFactory, remote: Remote) -> None:
    daemon = make_daemon(remote.config(), env={"SECRET": remote.secret}).start()

    assert daemon.send("out", TEXT).status_code == 204

    settled(daemon, 3)
    assert len(remote.received()) == 3
    log = daemon.log.read_text(encoding="utf-8")
    for form in {remote.secret, quote_plus(remote.secret)}:
        assert form not in log, f"the channel's secret is in the log (as {form!r})"


# --- 5. Validation at the door and in check-config --------------------------------------------


def test_a_message_needing_too_many_sms_parts_is_refused_with_422(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    remote = twilio_remote(twilio)
    params = remote.params | {"max_parts": 2}
    daemon = make_daemon(channel_file("out", "sms", params), env={"SECRET": remote.secret})
    daemon.start()
    fits = "ж" * 134  # UCS-2: two parts of 67
    too_long = "ж" * 135

    refused = daemon.send("out", too_long)

    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "message_rejected"
    assert body["field"] == "message"
    assert "3 SMS parts" in body["description"]
    assert "at most 2" in body["description"]
    assert daemon.deliveries() == []

    assert daemon.send("out", fits).status_code == 204
    settled(daemon, 3)
    assert [m.body for m in twilio.messages] == [fits] * 3


def check_config(
    config: Path, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(command or [str(BIN / "notifierd")]), "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_names_the_bad_phone_number(tmp_path: Path) -> None:
    config = tmp_path / "channels.yaml"
    params = {
        "provider": "smsru",
        "api_id": "x",
        "phones": ["+79251234567", "+7 925 123-45-68", "+447700900123"],
    }
    config.write_text(channel_file("sms_ru", "sms", params), encoding="utf-8")

    result = check_config(config)

    assert result.returncode == 2, result.stdout
    assert f"{config}: channels.sms_ru.params.phones.1: " in result.stderr
    assert "E.164" in result.stderr
    assert "phones.0" not in result.stderr and "phones.2" not in result.stderr


def test_check_config_lists_the_installed_workers_for_an_unknown_type(tmp_path: Path) -> None:
    config = tmp_path / "channels.yaml"
    config.write_text(channel_file("texts", "smss", {"phones": PHONES}), encoding="utf-8")

    result = check_config(config)

    assert result.returncode == 2, result.stdout
    prefix = f"{config}: channels.texts.worker: unknown worker type 'smss'; installed: "
    line = next(line for line in result.stderr.splitlines() if line.startswith(prefix))
    installed = line.removeprefix(prefix).split(", ")
    assert {"email", "null", "sms", "telegram"} <= set(installed)
