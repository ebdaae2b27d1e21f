"""How many SMS parts a text takes: GSM-7 when every character is in the GSM 03.38 alphabet,
otherwise UCS-2 (UTF-16 code units, so any Cyrillic letter switches the whole text to it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# GSM 03.38 basic character set (one septet each); 0x1B, the escape to the extension table,
# is not a character of its own.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as escape + character, two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE = 160
GSM7_PER_PART = 153  # a 6-septet user data header per part of a concatenated message
UCS2_SINGLE = 70
UCS2_PER_PART = 67


class SmsEncoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsParts:
    """The encoding of a text, its length in units of that encoding (septets or UTF-16 code
    units), how many parts it needs and how many units fit in one part when it is split."""

    encoding: SmsEncoding
    units: int
    parts: int
    per_part: int


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def count_parts(text: str) -> SmsParts:
    """The parts `text` is sent in. A two-unit character (a GSM-7 extension character, a UCS-2
    surrogate pair) is never split between parts, as phones and gateways do."""
    if is_gsm7(text):
        widths = [2 if char in GSM7_EXTENSION else 1 for char in text]
        encoding, single, per_part = SmsEncoding.GSM7, GSM7_SINGLE, GSM7_PER_PART
    else:
        widths = [2 if ord(char) > 0xFFFF else 1 for char in text]
        encoding, single, per_part = SmsEncoding.UCS2, UCS2_SINGLE, UCS2_PER_PART
    units = sum(widths)
    if units <= single:
        return SmsParts(encoding, units, 1 if units else 0, per_part)
    parts, filled = 1, 0
    for width in widths:
        if filled + width > per_part:
            parts, filled = parts + 1, 0
        filled += width
    return SmsParts(encoding, units, parts, per_part)
