"""Every spelling of a secret a remote may echo is redacted; nothing else is touched."""

from __future__ import annotations

import base64
import json
from multiprocessing import Pipe
from urllib.parse import quote, quote_plus

import pytest
from pydantic import BaseModel, SecretStr

from notifierd.messages import Outcome
from notifierd.processes import wire
from notifierd.processes.child import RedactingPipe
from notifierd.redaction import Redactor, secret_values
from notifierd.states import OutcomeKind

SECRET = 'pä/ss+w=rd&"q"\\1'
USER = "notifier@example.org"


def b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode()


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET, safe="").lower(),  # percent-encoding's hex in lower case
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),  # PHP's json_encode escapes '/'
        b64(SECRET),
        b64(f"{USER}:{SECRET}"),  # HTTP Basic
        b64(f"{USER}:{SECRET}", "latin-1"),  # HTTP Basic as requests encodes it
        b64(f"\0{USER}\0{SECRET}"),  # SMTP AUTH PLAIN
        b64(f"x\0{USER}\0{SECRET}").replace("+", "-").replace("/", "_"),  # URL-safe base64
    ],
)
def test_every_spelling_is_redacted(spelling: str) -> None:
    redacted = Redactor([SECRET]).text(f"remote said: {spelling} (end)")
    assert redacted.startswith("remote said: ") and redacted.endswith(" (end)")
    assert "***" in redacted and spelling not in redacted


def test_text_without_secrets_is_untouched() -> None:
    text = "535 5.7.8 Authentication credentials invalid; dXNlcg=="
    assert Redactor([SECRET]).text(text) == text
    assert Redactor([]).text(text) == text
    assert Redactor([""]).text(text) == text


def test_values_are_walked() -> None:
    value = {"error": f"bad {SECRET}", "nested": [SECRET, 3, None], "pair": ("a", SECRET)}
    assert Redactor([SECRET]).value(value) == {
        "error": "bad ***",
        "nested": ["***", 3, None],
        "pair": ("a", "***"),
    }


class Inner(BaseModel):
    token: SecretStr
    name: str = "n"


class Outer(BaseModel):
    password: SecretStr | None
    inner: Inner
    many: list[Inner]
    plain: str = "not secret"


def test_secret_values_finds_nested_secret_fields() -> None:
    params = Outer(
        password=SecretStr("a"), inner=Inner(token=SecretStr("b")), many=[Inner(token="c")]
    )
    assert secret_values(params) == ["a", "b", "c"]


def test_the_result_pipe_redacts_outcomes_and_log_events() -> None:
    receiving, sending = Pipe(duplex=False)
    pipe = RedactingPipe(sending, Redactor([SECRET]))
    pipe.send(("outcomes", [Outcome(1, 2, OutcomeKind.TEMPORARY, error=f"HTTP 500: {SECRET}")]))
    pipe.send(("log", "info", {"event": "x", "detail": b64(f"{USER}:{SECRET}")}))
    pipe.send(("ready", 42))
    answered = wire.decode(receiving.recv())
    assert answered[0] == wire.OUTCOMES
    [outcome] = answered[1]
    assert outcome.error == "HTTP 500: ***" and outcome.id == 1
    _, level, fields = receiving.recv()
    assert level == "info" and "***" in fields["detail"] and fields["event"] == "x"
    assert receiving.recv() == ("ready", 42)
