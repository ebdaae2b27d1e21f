"""The `email` worker against a real (aiosmtpd) SMTP server: STARTTLS, implicit TLS, AUTH,
replies injected at RCPT and DATA, and dropped connections."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.workers.email import (
    EmailParams,
    EmailWorker,
    build_message,
    first_line,
    render_subject,
)
from tests.fakes.server import free_port
from tests.fakes.smtp import DISCONNECT, FakeSmtp
from tests.fakes.tls import Certificate
from tests.workers.helpers import delivery

USER, PASSWORD = "notifier@example.org", "smtp-pass-5e1b7c"
ALICE, BOB = "alice@example.org", "bob@example.org"
TEXT = "Сервер db-1 недоступен\n\nДиск заполнен на 98 %. Проверьте «ёлку» №5 — срочно."
OpenWorker = Callable[..., Any]
SmtpServer = Callable[..., FakeSmtp]


def email_params(server: FakeSmtp, certificate: Certificate, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "security": server.security,
        "sender": f"Оповещения <{USER}>",
        "to": [ALICE, BOB],
        "timeout": 5,
        "ca_file": str(certificate.cert),
    }
    if server.username is not None:
        params |= {"username": USER, "password": PASSWORD}
    return params | extra


def errors_of(params: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        EmailParams.model_validate(params)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


BASE = {"host": "smtp.example.org", "sender": USER, "to": [ALICE]}


# --- Parameters -------------------------------------------------------------------------------


def test_recipients_and_default_ports() -> None:
    params = EmailParams.model_validate({**BASE, "to": [ALICE, BOB]})
    assert EmailWorker.recipients(params) == [ALICE, BOB]
    ports = {
        security: EmailParams.model_validate({**BASE, "security": security}).effective_port
        for security in ("starttls", "tls", "none")
    }
    assert ports == {"starttls": 587, "tls": 465, "none": 25}
    assert EmailParams.model_validate({**BASE, "port": 2525}).effective_port == 2525


@pytest.mark.parametrize(
    ("change", "loc", "fragment"),
    [
        ({"to": [ALICE, "not-an-address"]}, ("to", 1), "'not-an-address' is not an email"),
        ({"to": [ALICE, "Bob <bob@example.org>"]}, ("to", 1), "is not an email address"),
        ({"to": [ALICE, ALICE.upper()]}, ("to",), "is listed twice"),
        ({"to": []}, ("to",), "at least 1 item"),
        ({"sender": "nobody"}, ("sender",), "is not an address or 'Name <address>'"),
        ({"subject": "{channel} {level}"}, ("subject",), "unknown placeholder {level}"),
        ({"subject": "{channel"}, ("subject",), "not a valid template"),
        ({"username": USER}, (), "give both `username` and `password`"),
        ({"security": "ssl"}, ("security",), "'starttls', 'tls' or 'none'"),
        ({"ca_file": "/nonexistent/ca.pem"}, ("ca_file",), "Path does not point to a file"),
        ({"smtp_host": "x"}, ("smtp_host",), "Extra inputs are not permitted"),
    ],
)
def test_parameter_errors(change: dict[str, Any], loc: tuple[Any, ...], fragment: str) -> None:
    [(error_loc, message)] = errors_of({**BASE, **change})
    assert error_loc == loc
    assert fragment in message


def test_password_hidden_in_repr_and_params_survive_pickling() -> None:
    params = EmailParams.model_validate({**BASE, "username": USER, "password": PASSWORD})
    assert PASSWORD not in repr(params)
    # Params travel to spawned worker processes.
    assert pickle.loads(pickle.dumps(params)) == params


# --- Subject and message ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("one line", "one line"),
        ("\n   \n  first  real\tline \nsecond", "first real line"),
        ("x" * 150, "x" * 99 + "…"),
        ("", ""),
    ],
)
def test_first_line(message: str, expected: str) -> None:
    assert first_line(message) == expected


def test_subject_template() -> None:
    params = EmailParams.model_validate({**BASE, "subject": "{{{channel}}} {first_line}!"})
    assert render_subject(params, "alerts", "Диск\nполон") == "{alerts} Диск!"
    default = EmailParams.model_validate(BASE)
    assert render_subject(default, "alerts", "Диск\nполон") == "[alerts] Диск"


def test_message_without_8bitmime_is_base64() -> None:
    params = EmailParams.model_validate(BASE)
    message = build_message(params, "alerts", ALICE, TEXT, eight_bit=False)
    assert message["Content-Transfer-Encoding"] == "base64"
    assert message.get_content() == TEXT + "\n"
    assert message.as_bytes().isascii()


# --- Delivery over SMTP -----------------------------------------------------------------------


def test_starttls_auth_and_cyrillic_arrive_intact(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="starttls", username=USER, password=PASSWORD)
    worker = open_worker(EmailWorker, email_params(server, certificate))
    with capture_logs() as logs:
        worker.send(delivery(ALICE, TEXT))
    [received] = server.messages
    assert received.tls and received.login == USER
    assert received.mail_from == USER and received.rcpt_tos == [ALICE]
    assert "BODY=8BITMIME" in received.mail_options
    message = received.message
    assert message["Subject"] == "[alerts] Сервер db-1 недоступен"
    assert message["To"] == ALICE
    assert message["From"].addresses[0].display_name == "Оповещения"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content() == TEXT + "\n"
    # On the wire the headers are ASCII: RFC 2047 encoded words for the Cyrillic ones.
    headers = received.raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    subject = next(line for line in headers.split(b"\r\n") if line.startswith(b"Subject:"))
    assert b"=?utf-8?" in subject.lower()
    assert [entry["event"] for entry in logs] == ["email.delivered"]
    assert PASSWORD not in str(logs)
    assert message["Auto-Submitted"] == "auto-generated"  # RFC 3834: no auto-replies


def test_implicit_tls(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="tls", username=USER, password=PASSWORD, auth_required=True)
    open_worker(EmailWorker, email_params(server, certificate)).send(delivery(BOB, TEXT))
    [received] = server.messages
    assert received.tls and received.login == USER
    assert received.message.get_content() == TEXT + "\n"


def test_local_relay_without_tls_or_login(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="none")
    open_worker(EmailWorker, email_params(server, certificate)).send(delivery(ALICE, "ok"))
    [received] = server.messages
    assert not received.tls and received.login is None


def test_connection_is_reused_and_reopened_when_stale(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="starttls", username=USER, password=PASSWORD)
    worker = open_worker(EmailWorker, email_params(server, certificate))
    worker.send(delivery(ALICE, "one"))
    worker.send(delivery(BOB, "two"))
    assert server.logins == [USER]  # one session for both
    # The server goes away and comes back: the kept connection is stale, NOOP finds it out.
    server.stop()
    restarted = smtp_server(security="starttls", username=USER, password=PASSWORD, port=server.port)
    worker.send(delivery(ALICE, "three"))
    assert [m.message.get_content() for m in restarted.messages] == ["three\n"]


@pytest.mark.parametrize(
    ("stage", "reply", "expected"),
    [
        ("rcpt", "450 4.2.1 Mailbox busy, try later", TemporaryFailure),
        ("rcpt", "451 4.3.0 Local error", TemporaryFailure),
        ("rcpt", "550 5.1.1 No such user", PermanentFailure),
        ("rcpt", "553 5.1.3 Bad recipient address syntax", PermanentFailure),
        ("data", "451 4.3.0 Try again later", RateLimited),
        ("rcpt", "421 4.7.0 Too many messages, slow down", RateLimited),
        ("data", "451 4.7.1 Rate limited, please try it later", RateLimited),
        ("data", "452 4.3.1 Insufficient system storage", TemporaryFailure),
        ("data", "552 5.3.4 Message too big", PermanentFailure),
        ("data", "554 5.7.1 Rejected as spam", PermanentFailure),
        ("rcpt", DISCONNECT, TemporaryFailure),
        ("data", DISCONNECT, TemporaryFailure),
    ],
)
def test_refusals_and_disconnects(
    smtp_server: SmtpServer,
    certificate: Certificate,
    open_worker: OpenWorker,
    stage: str,
    reply: str,
    expected: type[DeliveryError],
) -> None:
    server = smtp_server(security="starttls", username=USER, password=PASSWORD)
    (server.script_rcpt if stage == "rcpt" else server.script_data)(ALICE, reply)
    worker = open_worker(EmailWorker, email_params(server, certificate))
    with pytest.raises(DeliveryError) as caught:
        worker.send(delivery(ALICE, TEXT))
    assert type(caught.value) is expected
    if reply != DISCONNECT:
        assert reply.split(maxsplit=1)[0] in str(caught.value)
    elif stage == "rcpt":
        assert "closed the connection" in str(caught.value)
    else:
        # Dropped after the final dot: the server may have queued the message.
        assert "outcome unknown" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    # The failure of one recipient neither repeats nor blocks the next one.
    worker.send(delivery(BOB, TEXT))
    assert [(m.rcpt_tos, m.message.get_content()) for m in server.messages] == [
        ([BOB], TEXT + "\n")
    ]


def test_wrong_password_is_misconfigured_and_never_shown(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="starttls", username=USER, password=PASSWORD)
    params = email_params(server, certificate, password="wrong-pass-4242")
    worker = open_worker(EmailWorker, params)
    with capture_logs() as logs, pytest.raises(ChannelMisconfigured, match="535") as caught:
        worker.send(delivery(ALICE, "hi"))
    # One AUTH command, although the server offers PLAIN and LOGIN: fail2ban counts each.
    assert server.failed_logins == 1 and server.messages == []
    assert "wrong-pass-4242" not in str(caught.value) + str(logs)
    encoded = base64.b64encode(b"wrong-pass-4242").decode()
    assert encoded not in str(caught.value)


def test_a_non_ascii_password_logs_in(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="starttls", username=USER, password="пароль-ä/+=")
    params = email_params(server, certificate, password="пароль-ä/+=")
    open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))
    assert server.logins == [USER] and len(server.messages) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("550 5.7.1 Relaying denied", ChannelMisconfigured),
        ("553 5.7.1 Sender address rejected: not owned by user", ChannelMisconfigured),
        ("552 5.3.4 Message size exceeds fixed limit", PermanentFailure),
        ("451 4.3.0 Temporary lookup failure", TemporaryFailure),
    ],
)
def test_refusals_at_mail_from(
    smtp_server: SmtpServer,
    certificate: Certificate,
    open_worker: OpenWorker,
    reply: str,
    expected: type[DeliveryError],
) -> None:
    server = smtp_server(security="starttls", username=USER, password=PASSWORD)
    server.script_mail(reply)
    with pytest.raises(DeliveryError, match=reply[:3]) as caught:
        open_worker(EmailWorker, email_params(server, certificate)).send(delivery(ALICE, "hi"))
    assert type(caught.value) is expected


@pytest.mark.parametrize(
    ("server_mode", "channel_mode", "hint"),
    [
        ("starttls", "tls", "security: starttls"),
        ("none", "tls", "security: starttls"),
        ("tls", "starttls", "security: tls"),
        ("tls", "none", "security: tls"),
    ],
)
def test_a_tls_mode_that_does_not_match_the_port_is_misconfigured(
    smtp_server: SmtpServer,
    certificate: Certificate,
    open_worker: OpenWorker,
    server_mode: str,
    channel_mode: str,
    hint: str,
) -> None:
    server = smtp_server(security=server_mode)
    # The greeting that an implicit-TLS server never sends is waited for `timeout` seconds.
    params = email_params(server, certificate, security=channel_mode, timeout=1)
    with pytest.raises(ChannelMisconfigured, match=hint):
        open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))
    assert server.messages == []


def test_missing_login_where_required_is_misconfigured(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="starttls", username=USER, password=PASSWORD, auth_required=True)
    params = email_params(server, certificate)
    del params["username"], params["password"]
    with pytest.raises(ChannelMisconfigured, match="530"):
        open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))


def test_starttls_is_never_downgraded(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="none")
    params = email_params(server, certificate, security="starttls")
    with pytest.raises(ChannelMisconfigured, match="does not offer STARTTLS"):
        open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))
    assert server.messages == []


def test_login_without_auth_offered_is_misconfigured(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="none")
    params = email_params(server, certificate, username=USER, password=PASSWORD)
    with pytest.raises(ChannelMisconfigured, match="does not offer AUTH"):
        open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_untrusted_certificate(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker, security: str
) -> None:
    server = smtp_server(security=security)
    params = email_params(server, certificate, ca_file=None)
    with pytest.raises(ChannelMisconfigured, match="certificate is not trusted"):
        open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))
    # An operator may opt out of verification (a relay on a private network).
    open_worker(EmailWorker, {**params, "tls_verify": False}).send(delivery(ALICE, "hi"))
    assert len(server.messages) == 1


def test_internationalized_addresses_need_smtputf8(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    international = "дежурный@example.org"
    server = smtp_server(security="starttls", smtputf8=False)
    worker = open_worker(EmailWorker, email_params(server, certificate, to=[ALICE, international]))
    # One recipient the server cannot take is refused alone; the channel is fine.
    with pytest.raises(PermanentFailure, match="SMTPUTF8"):
        worker.send(delivery(international, TEXT))
    worker.send(delivery(ALICE, TEXT))
    assert [m.rcpt_tos for m in server.messages] == [[ALICE]]
    # An internationalized sender would fail every delivery: that is the channel's setting.
    sender = "Оповещения <оповещения@example.org>"
    worker = open_worker(EmailWorker, email_params(server, certificate, sender=sender))
    with pytest.raises(ChannelMisconfigured, match="SMTPUTF8"):
        worker.send(delivery(ALICE, TEXT))
    # Where the server offers it, both go, with SMTPUTF8.
    offering = smtp_server(security="starttls")
    worker = open_worker(EmailWorker, email_params(offering, certificate, sender=sender))
    worker.send(delivery(international, TEXT))
    [received] = offering.messages
    assert received.rcpt_tos == [international] and "SMTPUTF8" in received.mail_options


def test_connection_refused_is_temporary(open_worker: OpenWorker) -> None:
    params = {**BASE, "host": "127.0.0.1", "port": free_port(), "security": "none"}
    with pytest.raises(TemporaryFailure, match="ConnectionRefusedError"):
        open_worker(EmailWorker, params).send(delivery(ALICE, "hi"))


def test_received_bytes_parse_back_to_the_same_message(
    smtp_server: SmtpServer, certificate: Certificate, open_worker: OpenWorker
) -> None:
    server = smtp_server(security="none")
    open_worker(EmailWorker, email_params(server, certificate)).send(delivery(ALICE, TEXT))
    reparsed = message_from_bytes(server.messages[0].raw, policy=policy.default)
    assert isinstance(reparsed, EmailMessage)
    assert reparsed.get_content() == TEXT + "\n"
    assert reparsed["Message-ID"].endswith("@example.org>")
