"""SMS parts counting: GSM-7 vs UCS-2 detection and the part boundaries."""

from __future__ import annotations

import re

import pytest

from notifierd.workers.sms import SmsParams, SmsWorker
from notifierd.workers.sms_parts import SmsEncoding, count_parts, is_gsm7

GSM, UCS = SmsEncoding.GSM7, SmsEncoding.UCS2


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", GSM, 0, 0),
        ("a", GSM, 1, 1),
        ("a" * 160, GSM, 160, 1),
        ("a" * 161, GSM, 161, 2),
        ("a" * 306, GSM, 306, 2),
        ("a" * 307, GSM, 307, 3),
        ("a" * 153 * 6, GSM, 918, 6),
        ("a" * (153 * 6 + 1), GSM, 919, 7),
        # Extension characters count as two septets.
        ("{" * 80, GSM, 160, 1),
        ("{" * 81, GSM, 162, 2),
        ("€" + "a" * 159, GSM, 161, 2),
        ("^{}\\[~]|€", GSM, 18, 1),
        # An escape pair is never split: 152 + 2 does not fit in a 153-septet part.
        ("a" * 152 + "{" + "a" * 152, GSM, 306, 3),
        # The GSM 03.38 basic set beyond ASCII.
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà\r\n", GSM, 43, 1),
        # Not in GSM-7: Cyrillic, the backtick, most accented letters, typographic quotes.
        ("я" * 70, UCS, 70, 1),
        ("я" * 71, UCS, 71, 2),
        ("я" * 67 * 6, UCS, 402, 6),
        ("я" * (67 * 6 + 1), UCS, 403, 7),
        ("a" * 159 + "я", UCS, 160, 3),
        ("`", UCS, 1, 1),
        ("ï", UCS, 1, 1),
        ("«ok»", UCS, 4, 1),
        # A character outside the BMP is a surrogate pair: two UCS-2 units, never split.
        ("😀" * 35, UCS, 70, 1),
        ("😀" * 36, UCS, 72, 2),
        ("a" * 66 + "😀" + "a" * 66, UCS, 134, 3),
    ],
)
def test_count_parts(text: str, encoding: SmsEncoding, units: int, parts: int) -> None:
    counted = count_parts(text)
    assert (counted.encoding, counted.units, counted.parts) == (encoding, units, parts)


def test_is_gsm7() -> None:
    assert is_gsm7("Hello, world! 100% [ok] {x} ~ €5")
    assert not is_gsm7("Привет")


def _params(max_parts: int = 6) -> SmsParams:
    return SmsParams.model_validate(
        {"provider": "smsru", "api_id": "x", "phones": ["+79251234567"], "max_parts": max_parts}
    )


@pytest.mark.parametrize(
    ("text", "max_parts", "reason"),
    [
        ("a" * 918, 6, None),
        ("я" * 402, 6, None),
        (
            "я" * 403,
            6,
            "the message needs 7 SMS parts (UCS-2, 67 characters per part); "
            "this channel allows at most 6",
        ),
        (
            "Статус: " + "я" * 530,
            6,
            "the message needs 9 SMS parts (UCS-2, 67 characters per part); "
            "this channel allows at most 6",
        ),
        (
            "a" * 919,
            6,
            "the message needs 7 SMS parts (GSM-7, 153 characters per part); "
            "this channel allows at most 6",
        ),
        ("a" * 160, 1, None),
        (
            "a" * 161,
            1,
            "the message needs 2 SMS parts (GSM-7, 153 characters per part); "
            "this channel allows at most 1",
        ),
    ],
)
def test_check_message(text: str, max_parts: int, reason: str | None) -> None:
    assert SmsWorker.check_message(_params(max_parts), text) == reason


def test_default_pattern_admits_what_the_largest_channel_could_send() -> None:
    pattern = re.compile(SmsWorker.default_pattern())
    assert pattern.fullmatch("a" * 1530)
    assert pattern.fullmatch("Привет, мир!\nВторая строка — «ёлка» №5")
    assert not pattern.fullmatch("a" * 1531)
    assert not pattern.fullmatch("   ")
    # Beyond the pattern, the channel's own limit is checked by check_message.
    assert SmsWorker.check_message(_params(6), "a" * 1530) is not None


def test_max_parts_is_bounded() -> None:
    with pytest.raises(ValueError, match="less than or equal to 10"):
        _params(11)
