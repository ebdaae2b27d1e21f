"""SMS parts counting: GSM-7 vs UCS-2 detection and the part boundaries."""

from __future__ import annotations

import pytest

from notifierd.workers.sms import SmsParams, SmsWorker
from notifierd.workers.sms.parts import SmsEncoding, SmsParts, count_parts, is_gsm7

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


UCS2_NOTE = "UTF-16 units long in UCS-2 (an emoji takes two)"
GSM7_NOTE = "septets long in GSM-7 (^{}[]~|€\\ take two)"


@pytest.mark.parametrize(
    ("text", "max_parts", "reason"),
    [
        ("a" * 918, 6, None),
        ("я" * 402, 6, None),
        (
            "я" * 403,
            6,
            f"message is 403 {UCS2_NOTE} and needs 7 SMS parts of 67; "
            "this channel allows at most 6 (max_parts)",
        ),
        (
            "Статус: " + "я" * 530,
            6,
            f"message is 538 {UCS2_NOTE} and needs 9 SMS parts of 67; "
            "this channel allows at most 6 (max_parts)",
        ),
        (
            "a" * 919,
            6,
            f"message is 919 {GSM7_NOTE} and needs 7 SMS parts of 153; "
            "this channel allows at most 6 (max_parts)",
        ),
        ("a" * 160, 1, None),
        (
            "a" * 161,
            1,
            f"message is 161 {GSM7_NOTE} and needs 2 SMS parts of 153; "
            "this channel allows at most 1 (max_parts)",
        ),
        # An emoji takes two UTF-16 units: 35 fill one SMS, and one letter more needs two.
        ("🔥" * 35, 1, None),
        (
            "🔥" * 35 + "a",
            1,
            f"message is 71 {UCS2_NOTE} and needs 2 SMS parts of 67; "
            "this channel allows at most 1 (max_parts)",
        ),
    ],
)
def test_check_message(text: str, max_parts: int, reason: str | None) -> None:
    assert SmsWorker.check_message(_params(max_parts), text) == reason


def test_any_unicode_text_fits_when_it_fits_the_parts() -> None:
    text = "🔥 disk full ✅ → ≥ 90% 250µs Ωμέγα 磁盘已满"
    assert count_parts(text) == SmsParts(UCS, 39, 1, 67)
    assert SmsWorker.check_message(_params(1), text) is None


def test_max_parts_is_bounded_by_what_the_provider_sends() -> None:
    # SMS.ru refuses a text longer than 8 SMS (status 205): a channel cannot ask for more.
    _params(8)
    with pytest.raises(ValueError, match="less than or equal to 8"):
        _params(9)
    twilio = {
        "provider": "twilio",
        "account_sid": "AC1",
        "auth_token": "x",
        "sender": "+15005550006",
        "phones": ["+79251234567"],
    }
    SmsParams.model_validate(twilio | {"max_parts": 10})
    with pytest.raises(ValueError, match="less than or equal to 10"):
        SmsParams.model_validate(twilio | {"max_parts": 11})
