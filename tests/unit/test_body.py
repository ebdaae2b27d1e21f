"""The form decoder: yarl's fast decoder, with the standard library's strict one behind it for
what yarl cannot tell apart. Whatever the text, the answer is the strict decoder's."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from notifierd.api.body import _decode_pairs
from notifierd.api.validation import FieldError

PIECES = [
    "a", "message", "=", "&", "+", "%", "%2", "%20", "%25", "%2B", "%3D", "%26", "%zz", "%D0",
    "%BF", "%D0%BF", "%C3%28", "%ED%A0%80", "%F4%90%80%80", "%EF%BF%BD", "\ufffd", "é", "п",
    "%00", "%e2%82%ac", ";", " ", "%FF", "%f0%9f%98%80",
]  # fmt: skip


def strict(text: str) -> list[tuple[str, str]] | None:
    try:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None


def decoded(text: str) -> list[tuple[str, str]] | None:
    try:
        return _decode_pairs(text, "body")
    except FieldError as exc:
        assert exc.code == "invalid_encoding"
        return None


def test_the_decoder_answers_as_the_strict_standard_decoder_on_random_texts() -> None:
    rng = random.Random(20261127)
    for _ in range(20_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        assert decoded(text) == strict(text), text


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("message=hi+%D0%BF%D1%80%D0%B8%2C+world%21", [("message", "hi при, world!")]),
        ("a=1&&b=&c", [("a", "1"), ("b", ""), ("c", "")]),
        ("a=%EF%BF%BD", [("a", "\ufffd")]),  # U+FFFD sent on purpose is kept
        ("a=%zz%", [("a", "%zz%")]),  # a broken escape stays as it is, as in the standard library
    ],
)  # fmt: skip
def test_forms_decode_to_their_pairs(text: str, pairs: list[tuple[str, str]]) -> None:
    assert _decode_pairs(text, "body") == pairs


@pytest.mark.parametrize("text", ["message=%FF", "a=%D0", "%C3%28=x", "a=%ED%A0%80"])
def test_an_escape_that_is_not_utf8_is_refused(text: str) -> None:
    with pytest.raises(FieldError) as refused:
        _decode_pairs(text, "query")
    assert refused.value.code == "invalid_encoding"
    assert refused.value.description == "the query is not valid UTF-8"
