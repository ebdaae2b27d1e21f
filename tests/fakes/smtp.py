"""A fake SMTP server: a real aiosmtpd server on 127.0.0.1 in a background thread.

- `security="starttls"`: plain connection that offers STARTTLS and requires it before MAIL
  (submission, port 587 style); `"tls"`: implicit TLS from the first byte (465 style);
  `"none"`: no TLS at all (a local relay on 25; also "STARTTLS not offered").
- With `username`/`password`, AUTH PLAIN and LOGIN are offered (after STARTTLS in that mode); a
  wrong login answers 535. `auth_required=True` answers 530 at MAIL FROM without a login.
- Faults per recipient, in order, at RCPT or at DATA: a reply line such as
  `"450 4.2.1 Mailbox busy"` or `"550 5.1.1 No such user"`, or `DISCONNECT` (the server drops
  the connection instead of answering).
- `smtputf8=False`: do not offer SMTPUTF8 (internationalized addresses, RFC 6531).
- `echo_credentials=True`: a refused login's 535 repeats the AUTH PLAIN argument (base64 of
  `\0user\0password`), as careless servers do.
- `script_mail(reply, ...)`: answer the next MAIL FROM commands with these replies (a sender
  refused, relay denied).
- `port`: listen there (to restart a server where a client's old connection pointed).

`rcpts` lists every RCPT TO received (refused ones too), to count the attempts per address.

    with FakeSmtp(certificate, username="u", password="p") as smtp:
        smtp.script_rcpt("a@example.org", "450 4.2.1 Try later")
        smtp.script_data("b@example.org", DISCONNECT)
        ...
        smtp.messages[0].message["Subject"]   # parsed with email.policy.default

Each received message records the envelope, the raw bytes, the parsed message, whether the
session was under TLS and who had logged in.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.server import free_port
from tests.fakes.tls import Certificate

DISCONNECT = "<disconnect>"


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    raw: bytes
    message: EmailMessage
    tls: bool
    login: str | None


class FakeSmtp:
    def __init__(
        self,
        certificate: Certificate | None = None,
        *,
        security: Literal["starttls", "tls", "none"] = "starttls",
        username: str | None = None,
        password: str | None = None,
        auth_required: bool = False,
        smtputf8: bool = True,
        echo_credentials: bool = False,
        port: int = 0,
    ) -> None:
        if security != "none" and certificate is None:
            raise ValueError(f"security={security!r} needs a certificate")
        self.certificate = certificate
        self.security = security
        self.username = username
        self.password = password
        self.auth_required = auth_required
        self.smtputf8 = smtputf8
        self.echo_credentials = echo_credentials
        self.host = "127.0.0.1"
        self.port = port
        self.messages: list[ReceivedMessage] = []
        #: Every RCPT TO address received, accepted or not, in order.
        self.rcpts: list[str] = []
        self.logins: list[str] = []
        self.failed_logins = 0
        #: When each refused login came (`time.monotonic()`), to measure the probe intervals.
        self.failed_login_at: list[float] = []
        self._mail: deque[str] = deque()
        self._rcpt: defaultdict[str, deque[str]] = defaultdict(deque)
        self._data: defaultdict[str, deque[str]] = defaultdict(deque)
        self._controller: _Controller | None = None

    def script_mail(self, *replies: str) -> None:
        """Answer the next MAIL FROM commands with these replies, in order."""
        self._mail.extend(replies)

    def script_rcpt(self, address: str, *replies: str) -> None:
        """Answer the next RCPT TO for `address` with these replies (or DISCONNECT), in order."""
        self._rcpt[address.lower()].extend(replies)

    def script_data(self, address: str, *replies: str) -> None:
        """Answer the next DATA of a transaction to `address` with these, in order."""
        self._data[address.lower()].extend(replies)

    def start(self) -> None:
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": self.smtputf8}
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
            # AUTH only over TLS, as a real submission server; aiosmtpd cannot tell an implicit
            # TLS connection from a plain one, so there (and without TLS) it must not insist.
            kwargs["auth_require_tls"] = self.security == "starttls"
        if self.security == "starttls":
            assert self.certificate is not None
            kwargs["tls_context"] = self.certificate.server_context()
            kwargs["require_starttls"] = True
        elif self.security == "tls":
            assert self.certificate is not None
            kwargs["ssl_context"] = self.certificate.server_context()
        # aiosmtpd cannot listen on port 0 (its start() checks the configured port).
        self.port = self.port or free_port()
        self._controller = _Controller(
            self, hostname=self.host, port=self.port, server_hostname="fake-smtp", **kwargs
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop listening and drop every open session (a client's kept connection goes stale,
        as when a real server restarts or times idle sessions out)."""
        controller, self._controller = self._controller, None
        if controller is not None:
            asyncio.run_coroutine_threadsafe(controller.drop_sessions(), controller.loop).result(10)
            controller.stop()

    def __enter__(self) -> FakeSmtp:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- aiosmtpd hooks (run in the server thread) ---------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            isinstance(data, LoginPassword)
            and self.username is not None
            and self.password is not None
            and data.login == self.username.encode()
            and data.password == self.password.encode()
        ):
            self.logins.append(self.username)
            return AuthResult(success=True, auth_data=self.username)
        self.failed_logins += 1
        self.failed_login_at.append(time.monotonic())
        # handled=False makes aiosmtpd answer 535; the default (True) sends nothing at all.
        if self.echo_credentials and isinstance(data, LoginPassword):
            argument = base64.b64encode(b"\0" + data.login + b"\0" + data.password).decode()
            return AuthResult(
                success=False, handled=False, message=f"535 5.7.8 Bad credentials: {argument}"
            )
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self._mail:
            return self._mail.popleft()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.rcpts.append(address)
        script = self._rcpt[address.lower()]
        reply = script.popleft() if script else "250 OK"
        if reply == DISCONNECT:
            return _disconnect(server)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return reply

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        for address in envelope.rcpt_tos:
            script = self._data[address.lower()]
            if script:
                reply = script.popleft()
                return _disconnect(server) if reply == DISCONNECT else reply
        raw = envelope.original_content or b""
        # Parse with the local line ending, as a mail store would; `raw` keeps the wire form.
        parsed = message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        transport = server.transport
        self.messages.append(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                mail_options=list(envelope.mail_options),
                raw=raw,
                message=parsed,
                tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
                login=session.auth_data if isinstance(session.auth_data, str) else None,
            )
        )
        return "250 2.0.0 OK: queued"


class _Controller(Controller):
    """A Controller that keeps its sessions, to close them on stop (aiosmtpd leaves them
    open, and their sockets would leak)."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        protocol = super().factory()  # type: ignore[no-untyped-call]
        assert isinstance(protocol, SMTP)
        self.sessions.append(protocol)
        return protocol

    async def drop_sessions(self) -> None:
        for protocol in self.sessions:
            if isinstance(protocol.transport, asyncio.Transport):
                protocol.transport.abort()
        # Let connection_lost run for each aborted transport.
        await asyncio.sleep(0)
        await asyncio.sleep(0)


def _disconnect(server: SMTP) -> str:
    # abort(), not close(): close() would still flush the reply written after it.
    if isinstance(server.transport, asyncio.Transport):
        server.transport.abort()
    return "421 4.4.2 never sent"
