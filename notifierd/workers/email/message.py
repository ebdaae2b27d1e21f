"""The message a delivery becomes.

Every message says it was sent by a machine (`Auto-Submitted: auto-generated`, RFC 3834), so
that vacation responders and ticket systems do not answer it.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from notifierd.workers.email.params import EmailParams

FIRST_LINE_LIMIT = 100


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
