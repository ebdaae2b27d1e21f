"""What a real server's answers mean for the channel:

- a TLS mode that does not match the port (`tls` on a STARTTLS port, `starttls` or `none` on an
  implicit-TLS port), and a sender refused at MAIL FROM, mean the channel is misconfigured;
- a connection lost after the message's final dot leaves the outcome unknown: the server may
  have queued the message. The delivery is retried (at least once, maybe twice).
"""

from __future__ import annotations

import re
import smtplib
import ssl

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.workers.remote import excerpt

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


def classify(exc: Exception) -> DeliveryError:
    """What a failure of an SMTP session means for the delivery."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (-1, b""))
        return by_code("recipient refused", code, reply)
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
        return by_code("sender refused", exc.smtp_code, exc.smtp_error, misconfigured=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        what = {
            smtplib.SMTPAuthenticationError: "login refused",
            smtplib.SMTPSenderRefused: "sender refused",
            smtplib.SMTPDataError: "message refused",
            smtplib.SMTPConnectError: "greeting refused",
            smtplib.SMTPHeloError: "EHLO refused",
        }.get(type(exc), "command refused")
        return by_code(what, exc.smtp_code, exc.smtp_error)
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


def by_code(
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


def outcome_unknown(exc: Exception) -> TemporaryFailure:
    return TemporaryFailure(
        "smtp: outcome unknown: the connection was lost after the message was sent, before "
        f"the server confirmed it ({type(exc).__name__}); it may have been delivered and is "
        "sent again"
    )
