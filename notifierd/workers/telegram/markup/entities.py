"""The model of formatted text: plain text and its entities, and Telegram's refusal of markup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Format = Literal["text", "html", "markdownv2"]

#: Telegram's limit on one message's text after parsing, in characters (code points: the Bot
#: API server refuses a bot's text when TDLib's `utf8_length` of it exceeds
#: `message_text_length_max`, td/telegram/MessageContent.cpp). Parts are cut in UTF-16 units
#: (`split_spans`), never more than characters, so a part is within it whatever it holds.
TEXT_LIMIT = 4096


class MarkupError(ValueError):
    """Telegram would refuse the text: "can't parse entities: <reason>"."""

    def __init__(self, reason: str, position: int | None = None, detail: str = "") -> None:
        self.reason = reason
        #: Where in the text as sent (a code point index), when the reason has a place.
        self.position = position
        where = "" if position is None else f" at character {position + 1}"
        super().__init__(reason + where + detail)


@dataclass(frozen=True)
class Entity:
    """A formatted range `[start, end)` of the plain text. `argument` is a link's URL, a
    `pre` block's language, a custom emoji's id, or "expandable" for a blockquote."""

    kind: str
    start: int
    end: int
    argument: str = ""


@dataclass(frozen=True)
class Parsed:
    """Plain text and its entities, each listed before the entities nested inside it."""

    text: str
    entities: tuple[Entity, ...] = ()


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: an emoji outside the Basic Multilingual Plane is two."""
    return len(text.encode("utf-16-le")) // 2
