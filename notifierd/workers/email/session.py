"""The SMTP session: one that knows whether the message's final dot went out, its login, and
the probe that tells an implicit-TLS port from a plain one.

A refused login is tried with one AUTH command (PLAIN, else LOGIN), never once per mechanism
the server offers: each refused AUTH counts towards a fail2ban ban of this host.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


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
