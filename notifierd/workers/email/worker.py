"""The `email` worker: each delivery one SMTP transaction to one recipient.

The SMTP connection is kept between sends and checked with NOOP before reuse; any error drops
it. `starttls` never falls back to plain text: a server without STARTTLS is a misconfiguration.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from email.utils import parseaddr
from pathlib import Path

import structlog

from notifierd.errors import ChannelMisconfigured
from notifierd.messages import Delivery
from notifierd.workers.base import Worker
from notifierd.workers.email.failures import by_code, classify, outcome_unknown, without_smtputf8
from notifierd.workers.email.message import build_message
from notifierd.workers.email.params import EmailParams
from notifierd.workers.email.session import Session, TlsSession, login, speaks_tls

log = structlog.get_logger("notifierd.worker.email")


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
            raise by_code("recipient refused", code, reply)
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
