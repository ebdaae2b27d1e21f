"""The `email` worker: a UTF-8 text/plain message to a set of addresses over SMTP.

Channel parameters (one delivery per address in `to`):

```yaml
params:
  host: smtp.example.org
  security: starttls          # starttls (587) | tls (implicit TLS, 465) | none (25, local relay)
  port: 587                   # optional: the default follows `security`
  username: notifier@example.org
  password: "${SMTP_PASSWORD}"
  sender: "Notifier <notifier@example.org>"
  to: [ops@example.org, oncall@example.org]
  subject: "[{channel}] {first_line}"
  timeout: 30                 # seconds, per network operation
  ca_file: /etc/ssl/private-ca.pem   # optional: trust this CA for the server's certificate
```

`subject` is a template with two placeholders: `{channel}` (the channel's name) and
`{first_line}` (the first non-blank line of the message, cut at 100 characters); write `{{` and
`}}` for literal braces. Non-ASCII subjects and names are RFC 2047-encoded.

The SMTP connection is kept between sends and checked with NOOP before reuse; any error drops
it. `starttls` never falls back to plain text: a server without STARTTLS is a misconfiguration.

What a real server's answers mean for the channel:

- a refused login is tried with one AUTH command (PLAIN, else LOGIN), never once per mechanism
  the server offers: each refused AUTH counts towards a fail2ban ban of this host;
- a TLS mode that does not match the port (`tls` on a STARTTLS port, `starttls` or `none` on an
  implicit-TLS port), and a sender refused at MAIL FROM, mean the channel is misconfigured;
- a connection lost after the message's final dot leaves the outcome unknown: the server may
  have queued the message. The delivery is retried (at least once, maybe twice).

Every message says it was sent by a machine (`Auto-Submitted: auto-generated`, RFC 3834), so
that vacation responders and ticket systems do not answer it.
"""

from __future__ import annotations

import base64
import contextlib
import re
import smtplib
import socket
import ssl
import string
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Self

import structlog
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    field_validator,
    model_validator,
)

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.messages import Delivery
from notifierd.workers.base import Worker, repeated
from notifierd.workers.remote import excerpt

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = structlog.get_logger("notifierd.worker.email")

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
SUBJECT_PLACEHOLDERS = frozenset({"channel", "first_line"})
FIRST_LINE_LIMIT = 100
# Reply codes that mean the channel's own login is wrong or missing (RFC 4954).
MISCONFIGURED_CODES = frozenset({530, 534, 535, 538})
# At MAIL FROM a 5xx refuses the channel's sender (or its right to relay), except this one:
# the message is over the server's SIZE limit (RFC 1870), a verdict on this message alone.
MESSAGE_TOO_BIG = 552
# What OpenSSL reports when the other end does not speak TLS (a plain SMTP greeting read as a
# TLS record).
NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)
# A 421 or 451 whose text asks to come back later ("Too many connections, try again later",
# "rate limited", greylisting) is a rate limit: the retry is not charged an attempt. SMTP
# names no time, so the channel's retry delay applies.
TRY_LATER_CODES = frozenset({421, 451})
TRY_LATER = re.compile(r"try (?:\w+ )*later|rate.?limit|too many|throttl|slow down", re.I)
_ATOM = r"[^@\s<>(),;:\"\[\]\\]+"
ADDRESS = re.compile(rf"{_ATOM}@{_ATOM}")


def _check_address(value: str) -> str:
    if ADDRESS.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not an email address (local-part@domain)")
    return value


def _check_mailbox(value: str) -> str:
    """An address, optionally with a display name: `Name <local@domain>`."""
    if "\n" in value or "\r" in value:
        raise ValueError("the sender must be on one line")
    _, address = parseaddr(value)
    if not address or ADDRESS.fullmatch(address) is None:
        raise ValueError(f"{value!r} is not an address or 'Name <address>'")
    return value


Address = Annotated[str, AfterValidator(_check_address)]
Mailbox = Annotated[str, AfterValidator(_check_mailbox)]


class EmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    sender: Mailbox
    to: list[Address] = Field(min_length=1)
    subject: str = "[{channel}] {first_line}"
    timeout: float = Field(default=30.0, gt=0, le=600)
    ca_file: FilePath | None = None
    tls_verify: bool = Field(default=True, description="false: accept any certificate")

    @field_validator("to")
    @classmethod
    def _distinct(cls, addresses: list[str]) -> list[str]:
        twice = repeated(addresses, key=str.lower)
        if twice is not None:
            raise ValueError(f"address {twice!r} is listed twice")
        return addresses

    @field_validator("subject")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(template)]
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc} (write {{{{ for a brace)") from None
        unknown = {field for field in fields if field is not None} - SUBJECT_PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; "
                "the subject may use {channel} and {first_line}"
            )
        return template

    @model_validator(mode="after")
    def _login_complete(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both `username` and `password`, or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]


def first_line(message: str) -> str:
    """The first non-blank line of `message`, stripped and cut at 100 characters."""
    for raw in message.splitlines():
        line = " ".join(raw.split())
        if line:
            if len(line) > FIRST_LINE_LIMIT:
                return line[: FIRST_LINE_LIMIT - 1] + "…"
            return line
    return ""


def render_subject(params: EmailParams, channel: str, message: str) -> str:
    subject = params.subject.format(channel=channel, first_line=first_line(message))
    return " ".join(subject.split())


def build_message(
    params: EmailParams, channel: str, recipient: str, text: str, *, eight_bit: bool = True
) -> EmailMessage:
    """The message to send: UTF-8 text/plain, 8bit when the server takes it, else base64."""
    message = EmailMessage()
    message["From"] = params.sender
    message["To"] = recipient
    message["Subject"] = render_subject(params, channel, text)
    message["Date"] = formatdate(usegmt=True)
    domain = parseaddr(params.sender)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=domain or None)
    message["Auto-Submitted"] = "auto-generated"
    if eight_bit or text.isascii():
        message.set_content(text)
    else:
        message.set_content(text, cte="base64")
    return message


def classify(exc: Exception) -> DeliveryError:
    """What a failure of an SMTP session means for the delivery."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (-1, b""))
        return _by_code("recipient refused", code, reply)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelMisconfigured(f"smtp: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ChannelMisconfigured(
            f"smtp: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "set ca_file to the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError) and exc.reason in NOT_TLS_REASONS:
        return ChannelMisconfigured(
            f"smtp: the server does not speak TLS from the first byte ({exc.reason}): this is "
            "a plain or STARTTLS port; set security: starttls (usually port 587)"
        )
    if isinstance(exc, smtplib.SMTPSenderRefused) and _refuses_sender(exc.smtp_code):
        return _by_code("sender refused", exc.smtp_code, exc.smtp_error, misconfigured=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        what = {
            smtplib.SMTPAuthenticationError: "login refused",
            smtplib.SMTPSenderRefused: "sender refused",
            smtplib.SMTPDataError: "message refused",
            smtplib.SMTPConnectError: "greeting refused",
            smtplib.SMTPHeloError: "EHLO refused",
        }.get(type(exc), "command refused")
        return _by_code(what, exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"smtp: the server closed the connection: {exc}")
    if isinstance(exc, TimeoutError):
        return TemporaryFailure("smtp: timed out")
    return TemporaryFailure(f"smtp: {type(exc).__name__}: {exc}")


def without_smtputf8(sender: str, recipient: str) -> DeliveryError:
    """A non-ASCII address, and a server that does not offer SMTPUTF8 (RFC 6531). A sender
    address like that fails every delivery of the channel; a recipient fails alone (smtplib
    would raise SMTPNotSupportedError, which means a misconfigured channel)."""
    if not sender.isascii():
        return ChannelMisconfigured(
            f"smtp: the sender address {sender!r} is internationalized and the server does "
            "not offer SMTPUTF8"
        )
    return PermanentFailure(
        f"smtp: the address {recipient!r} is internationalized and the server does not offer "
        "SMTPUTF8"
    )


def _refuses_sender(code: int) -> bool:
    return 500 <= code < 600 and code != MESSAGE_TOO_BIG


def _by_code(
    what: str, code: int, reply: bytes | str, *, misconfigured: bool = False
) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"smtp: {what}: {code} {excerpt(text)}"
    if misconfigured or code in MISCONFIGURED_CODES:
        return ChannelMisconfigured(message)
    if code in TRY_LATER_CODES and TRY_LATER.search(text):
        return RateLimited(message)
    if 500 <= code < 600:
        return PermanentFailure(message)
    return TemporaryFailure(message)


class Session(smtplib.SMTP):
    """An SMTP session that knows whether the last thing it sent was a message's final dot,
    and so whether a lost connection leaves the message's fate unknown."""

    final_dot_sent = False

    def send(self, s: ReadableBuffer | str) -> None:
        self.final_dot_sent = False
        super().send(s)
        # smtplib's data() sends the message and its terminating ".\r\n" in one call.
        self.final_dot_sent = isinstance(s, bytes) and s.endswith(b"\r\n.\r\n")


class TlsSession(Session, smtplib.SMTP_SSL):
    """A `Session` over implicit TLS (port 465 style)."""


def login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in with one AUTH command. smtplib's `login` tries each mechanism the server offers
    in turn, so one wrong password costs two or three refusals, each counted by fail2ban; it
    also cannot send a non-ASCII password (RFC 4616 PLAIN is UTF-8)."""
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" in offered:
        code, reply = smtp.docmd("AUTH", "PLAIN " + _base64(f"\0{username}\0{password}"))
    elif "LOGIN" in offered:
        code, reply = smtp.docmd("AUTH", "LOGIN " + _base64(username))
        if code == 334:
            code, reply = smtp.docmd(_base64(password))
    else:
        raise smtplib.SMTPNotSupportedError(
            f"the server offers no AUTH mechanism notifierd speaks (PLAIN, LOGIN): {offered}"
        )
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether the server at host:port completes a TLS handshake (certificate unchecked: the
    question is only which protocol the port speaks)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except OSError:  # ssl.SSLError included: a plain server's greeting is no TLS record
        return False


def outcome_unknown(exc: Exception) -> TemporaryFailure:
    return TemporaryFailure(
        "smtp: outcome unknown: the connection was lost after the message was sent, before "
        f"the server confirmed it ({type(exc).__name__}); it may have been delivered and is "
        "sent again"
    )


class EmailWorker(Worker[EmailParams]):
    """Sends each delivery as one SMTP transaction to one recipient."""

    Params = EmailParams
    max_length = None  # a mail body has no limit of its own; the API's max_body_size bounds it
    # One send is several round trips (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA), each
    # bounded by `timeout`: hold the lease long enough that a slow server is not raced.
    lease_seconds = 300.0

    def __init__(self, channel: str, params: EmailParams) -> None:
        super().__init__(channel, params)
        self._smtp: Session | None = None

    @classmethod
    def recipients(cls, params: EmailParams) -> list[str]:
        return list(params.to)

    def close(self) -> None:
        self._drop(polite=True)

    def send(self, delivery: Delivery) -> None:
        params = self.params
        try:
            smtp = self._connection()
            recipient = delivery.recipient
            envelope_sender = parseaddr(params.sender)[1]
            eight_bit = smtp.has_extn("8bitmime")
            message = build_message(
                params, delivery.channel, recipient, delivery.message, eight_bit=eight_bit
            )
            # send_message adds SMTPUTF8 and BODY=8BITMIME itself for non-ASCII addresses.
            international = not (recipient + envelope_sender).isascii()
            if international and not smtp.has_extn("smtputf8"):
                raise without_smtputf8(envelope_sender, recipient)
            options = ["BODY=8BITMIME"] if eight_bit and not international else []
            refused = smtp.send_message(
                message, from_addr=envelope_sender, to_addrs=[recipient], mail_options=options
            )
        except (smtplib.SMTPException, OSError) as exc:
            sent = self._smtp is not None and self._smtp.final_dot_sent
            self._drop(polite=False)
            if sent and not isinstance(exc, smtplib.SMTPResponseException):
                raise outcome_unknown(exc) from None
            raise classify(exc) from None
        if refused:
            code, reply = refused[recipient]
            raise _by_code("recipient refused", code, reply)
        log.info(
            "email.delivered",
            channel=delivery.channel,
            delivery_id=delivery.id,
            recipient=recipient,
            attempt=delivery.attempt,
            message_id=message["Message-ID"],
        )

    def _connection(self) -> Session:
        if self._smtp is not None:
            try:
                code, _ = self._smtp.noop()
            except (smtplib.SMTPException, OSError):
                code = -1
            if code == 250:
                return self._smtp
            self._drop(polite=False)
        self._smtp = self._connect()
        return self._smtp

    def _connect(self) -> Session:
        params = self.params
        context = self._tls_context()
        smtp = self._greeted(context)
        try:
            smtp.ehlo()
            if params.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        "the server does not offer STARTTLS (security: starttls never falls "
                        "back to plain text)"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if params.username is not None and params.password is not None:
                if not smtp.has_extn("auth"):
                    raise smtplib.SMTPNotSupportedError(
                        "the server does not offer AUTH, but the channel has a login"
                    )
                login(smtp, params.username, params.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _greeted(self, context: ssl.SSLContext) -> Session:
        """A session that has read the server's greeting. A server that says nothing until it
        gets a TLS handshake listens on an implicit-TLS port: a misconfiguration, not a slow
        server."""
        params = self.params
        host, port = params.host, params.effective_port
        if params.security == "tls":
            return TlsSession(host, port, timeout=params.timeout, context=context)
        try:
            return Session(host, port, timeout=params.timeout)
        except smtplib.SMTPServerDisconnected:
            # Connected, but no greeting came (a timeout or a hang-up).
            if speaks_tls(host, port, params.timeout):
                raise ChannelMisconfigured(
                    f"smtp: {host}:{port} speaks TLS from the first byte (implicit TLS, "
                    "usually port 465); set security: tls"
                ) from None
            raise

    def _tls_context(self) -> ssl.SSLContext:
        params = self.params
        cafile = None if params.ca_file is None else str(Path(params.ca_file))
        context = ssl.create_default_context(cafile=cafile)
        if not params.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _drop(self, *, polite: bool) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        if polite:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        smtp.close()
