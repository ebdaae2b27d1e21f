"""The messages a text becomes, and the checks it passes at intake.

A channel's `format` says how its text is meant: `text` goes without `parse_mode`; `html` and
`markdownv2` are checked at intake by Telegram's rules (`markup`) and measured after parsing.
Should Telegram answer "can't parse entities" all the same, the message goes once more as its
plain text, without `parse_mode`, and a warning is logged: never a failure for formatting
alone.
"""

from __future__ import annotations

from typing import NamedTuple

import structlog

from notifierd.workers.telegram.markup import (
    TEXT_LIMIT,
    Format,
    MarkupError,
    parse,
    render,
    split,
    split_spans,
)
from notifierd.workers.telegram.params import TelegramParams

log = structlog.get_logger("notifierd.worker.telegram")

#: The `parse_mode` Telegram is sent for each `format`.
PARSE_MODES: dict[Format, str] = {"html": "HTML", "markdownv2": "MarkdownV2"}


class Part(NamedTuple):
    """One message to send: its text as sent, its parse_mode, and its text without markup."""

    text: str
    parse_mode: str | None
    plain: str


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Plain `text` cut into parts of at most `limit` UTF-16 units (see `split_spans`)."""
    return [text[start:end] for start, end in split_spans(text, limit)]


def check_text(params: TelegramParams, message: str) -> str | None:
    """Why Telegram would refuse `message` (its markup, its length after parsing, the parts
    it needs), or None."""
    if params.format == "text":
        return _check_parts(params, split_text(message)) if params.split_long else None
    try:
        parsed = parse(message, params.format)
    except MarkupError as exc:
        return _markup_refusal(params.format, exc)
    if not parsed.text.strip():
        return f"the message has no text once its {params.format} markup is removed"
    if params.split_long:
        return _check_parts(params, [part.text for part in split(parsed)])
    if len(parsed.text) > TEXT_LIMIT:
        return (
            f"the message is {len(parsed.text)} characters long once its {params.format} "
            f"markup is removed; Telegram accepts {TEXT_LIMIT} (set split_long: true to "
            "send it as several messages)"
        )
    return None


def message_parts(
    params: TelegramParams, message: str, channel: str, delivery_id: int
) -> list[Part]:
    """The messages a delivery becomes: one, or with `split_long` as many as its length
    needs, each with the parse_mode to send it in and its plain text (for the fallback)."""
    fmt, split_long = params.format, params.split_long
    if fmt != "text":
        try:
            parsed = parse(message, fmt)
        except MarkupError as exc:
            # Intake refuses such text, so only a message queued before the channel's
            # format changed gets here: send it as it is, every character literal.
            log.warning(
                "telegram.markup_invalid",
                channel=channel,
                delivery_id=delivery_id,
                error=f"can't parse entities: {exc}",
                hint="sent as plain text without parse_mode",
            )
        else:
            pieces = split(parsed) if split_long else [parsed]
            mode = PARSE_MODES[fmt]
            if len(pieces) <= 1:  # sent as the client wrote it
                return [Part(message, mode, parsed.text)]
            return [Part(render(piece, fmt), mode, piece.text) for piece in pieces]
    texts = split_text(message) if split_long else [message]
    return [Part(text, None, text) for text in texts]


def _check_parts(params: TelegramParams, parts: list[str]) -> str | None:
    """The refusal of a text that would need more messages than `max_parts`, else None."""
    if len(parts) > params.max_parts:
        return (
            f"the message would be split into {len(parts)} Telegram messages; "
            f"this channel allows at most {params.max_parts} (max_parts)"
        )
    return None


def _markup_refusal(fmt: Format, error: MarkupError) -> str:
    """A 422's reason for markup Telegram would refuse: where and why, in Telegram's words,
    and for the common slip (a literal character that is markup) how to write it."""
    name = PARSE_MODES[fmt]
    reason = f"Telegram would refuse this {name} text: can't parse entities: {error}"
    if fmt == "html" and error.reason.startswith("Unsupported start tag"):
        return reason + '; write a literal "<" as "&lt;" (and "&" as "&amp;")'
    if fmt == "markdownv2" and error.reason.startswith("Character '"):
        char = error.reason[len("Character '")]
        return reason + f"; write a literal {char!r} as '\\{char}'"
    return reason
