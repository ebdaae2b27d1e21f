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
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import string
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Annotated, Literal, Self

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
    TemporaryFailure,
)
from notifierd.messages import Delivery
from notifierd.workers.base import Worker
from notifierd.workers.remote import excerpt, redact

log = structlog.get_logger("notifierd.worker.email")

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
SUBJECT_PLACEHOLDERS = frozenset({"channel", "first_line"})
FIRST_LINE_LIMIT = 100
# Reply codes that mean the channel's own login is wrong or missing (RFC 4954).
MISCONFIGURED_CODES = frozenset({530, 534, 535, 538})
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
        seen: set[str] = set()
        for address in addresses:
            if address.lower() in seen:
                raise ValueError(f"address {address!r} is listed twice")
            seen.add(address.lower())
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
    if eight_bit or text.isascii():
        message.set_content(text)
    else:
        message.set_content(text, cte="base64")
    return message


def classify(exc: Exception, secrets: list[str]) -> DeliveryError:
    """What a failure of an SMTP session means for the delivery."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (-1, b""))
        return _by_code("recipient refused", code, reply, secrets)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelMisconfigured(f"smtp: {redact(str(exc), secrets)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ChannelMisconfigured(
            f"smtp: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "set ca_file to the CA that signed it"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        what = {
            smtplib.SMTPAuthenticationError: "login refused",
            smtplib.SMTPSenderRefused: "sender refused",
            smtplib.SMTPDataError: "message refused",
            smtplib.SMTPConnectError: "greeting refused",
            smtplib.SMTPHeloError: "EHLO refused",
        }.get(type(exc), "command refused")
        return _by_code(what, exc.smtp_code, exc.smtp_error, secrets)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"smtp: the server closed the connection: {exc}")
    if isinstance(exc, TimeoutError):
        return TemporaryFailure("smtp: timed out")
    return TemporaryFailure(f"smtp: {type(exc).__name__}: {redact(str(exc), secrets)}")


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


def _by_code(what: str, code: int, reply: bytes | str, secrets: list[str]) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = redact(f"smtp: {what}: {code} {excerpt(text)}", secrets)
    if code in MISCONFIGURED_CODES:
        return ChannelMisconfigured(message)
    if 500 <= code < 600:
        return PermanentFailure(message)
    return TemporaryFailure(message)


class EmailWorker(Worker):
    """Sends each delivery as one SMTP transaction to one recipient."""

    Params = EmailParams
    max_length = 100_000
    # One send is several round trips (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA), each
    # bounded by `timeout`: hold the lease long enough that a slow server is not raced.
    lease_seconds = 300.0

    def __init__(self, channel: str, params: BaseModel) -> None:
        super().__init__(channel, params)
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def recipients(cls, params: BaseModel) -> list[str]:
        assert isinstance(params, EmailParams)
        return list(params.to)

    @property
    def _params(self) -> EmailParams:
        assert isinstance(self.params, EmailParams)
        return self.params

    def _secrets(self) -> list[str]:
        password = self._params.password
        return [] if password is None else [password.get_secret_value()]

    def close(self) -> None:
        self._drop(polite=True)

    def send(self, delivery: Delivery) -> None:
        params = self._params
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
            self._drop(polite=False)
            raise classify(exc, self._secrets()) from None
        if refused:
            code, reply = refused[recipient]
            raise _by_code("recipient refused", code, reply, self._secrets())
        log.info(
            "email.delivered",
            channel=delivery.channel,
            delivery_id=delivery.id,
            recipient=recipient,
            attempt=delivery.attempt,
            message_id=message["Message-ID"],
        )

    def _connection(self) -> smtplib.SMTP:
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

    def _connect(self) -> smtplib.SMTP:
        params = self._params
        context = self._tls_context()
        smtp: smtplib.SMTP
        if params.security == "tls":
            smtp = smtplib.SMTP_SSL(
                params.host, params.effective_port, timeout=params.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(params.host, params.effective_port, timeout=params.timeout)
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
                smtp.login(params.username, params.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        params = self._params
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
