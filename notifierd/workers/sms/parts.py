"""How many SMS parts a text takes: GSM-7 when every character is in the GSM 03.38 alphabet,
otherwise UCS-2 (UTF-16 code units, so any Cyrillic letter switches the whole text to it)."""

from __future__ import annotations

import re
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


# Membership tests as compiled classes: the intake counts every message, and a loop over its
# characters in Python would cost ten times more than a search in C.
_NOT_GSM7 = re.compile("[^" + re.escape("".join(sorted(GSM7_BASIC | GSM7_EXTENSION))) + "]")
_GSM7_DOUBLE = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")
_UTF16_DOUBLE = re.compile("[\U00010000-\U0010ffff]")


def is_gsm7(text: str) -> bool:
    return _NOT_GSM7.search(text) is None


def count_parts(text: str) -> SmsParts:
    """The parts `text` is sent in. A two-unit character (a GSM-7 extension character, a UCS-2
    surrogate pair) is never split between parts, as phones and gateways do."""
    if is_gsm7(text):
        double, encoding = _GSM7_DOUBLE, SmsEncoding.GSM7
        single, per_part = GSM7_SINGLE, GSM7_PER_PART
        doubles = len(double.findall(text))
    else:
        double, encoding = _UTF16_DOUBLE, SmsEncoding.UCS2
        single, per_part = UCS2_SINGLE, UCS2_PER_PART
        # Encoding (C, no regex) is about twice as fast as counting the pairs with `double`.
        doubles = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
    units = len(text) + doubles
    if units <= single:
        return SmsParts(encoding, units, 1 if units else 0, per_part)
    if not doubles:
        return SmsParts(encoding, units, -(-units // per_part), per_part)
    # Fill the parts greedily, stepping from one two-unit character to the next.
    parts, filled, start = 1, 0, 0
    for found in double.finditer(text):
        parts, filled = _add_singles(parts, filled, found.start() - start, per_part)
        if filled + 2 > per_part:
            parts, filled = parts + 1, 0
        filled += 2
        start = found.end()
    parts, _ = _add_singles(parts, filled, len(text) - start, per_part)
    return SmsParts(encoding, units, parts, per_part)


def _add_singles(parts: int, filled: int, count: int, per_part: int) -> tuple[int, int]:
    """(parts, units in the last part) after `count` one-unit characters more."""
    total = filled + count
    if total <= per_part:
        return parts, total
    added = (total - 1) // per_part
    return parts + added, total - added * per_part
