"""Keeping a channel's secrets out of every text that leaves a worker process.

A remote may repeat a secret in its answer, and not always as it was sent: SMS.ru quotes the
`api_id` of a query string, an SMTP server echoes the AUTH PLAIN argument (base64 of
`\\0user\\0password`), an HTTP API the `Authorization: Basic` value (base64 of `user:secret`),
a JSON body escapes it. A `Redactor` knows every such spelling of each secret and replaces it
with `***`; the worker process passes each outcome's error and each log event through one
(`notifierd.processes.child`), so no worker has to remember to.

Base64 is matched without knowing what surrounds the secret: of the encoding of
`prefix + secret + suffix`, the characters made only of the secret's bits depend on nothing
but the secret and on where it starts modulo three bytes, so three "cores" per alphabet cover
the secret alone, after `user:`, after `\\0user\\0`, or anywhere else in an encoded blob.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretBytes, SecretStr

REDACTED = "***"
# A shorter base64 core could match ordinary text by chance; a secret this short in base64 is
# still redacted where it is spelt in full (the plain and escaped spellings).
MIN_CORE = 4
_PERCENT = re.compile(r"%([0-9A-F])([0-9A-F])")


def secret_values(params: BaseModel) -> list[str]:
    """The values of every `SecretStr` / `SecretBytes` field in `params`, nested models and
    lists and dicts of them included."""
    found: list[str] = []
    _collect(params, found)
    return found


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, SecretBytes):
        found.append(value.get_secret_value().decode("utf-8", "replace"))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect(getattr(value, name), found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, found)


def spellings(secret: str) -> set[str]:
    """Every form of `secret` a remote may repeat: plain, URL-encoded,
    JSON- and HTML-escaped, and the base64 cores (standard and URL-safe alphabets)."""
    if not secret:
        return set()
    forms = {secret, html.escape(secret)}
    forms.update({quote(secret, safe=""), quote(secret), quote_plus(secret)})
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.update({escaped, escaped.replace("/", "\\/")})
    # requests encodes HTTP Basic credentials as Latin-1, most else as UTF-8.
    for encoding in ("utf-8", "latin-1"):
        with contextlib.suppress(UnicodeEncodeError):
            forms.update(_base64_cores(secret.encode(encoding)))
    return forms


def _base64_cores(raw: bytes) -> set[str]:
    cores: set[str] = set()
    for offset in range(3):
        first = -(-8 * offset // 6)  # the first character whose six bits are all the secret's
        end = 8 * (offset + len(raw)) // 6
        encoded = base64.b64encode(b"\0" * offset + raw)[first:end].decode("ascii")
        if len(encoded) >= MIN_CORE:
            cores.update({encoded, encoded.replace("+", "-").replace("/", "_")})
    return cores


def _pattern(form: str) -> str:
    # Percent-encoding's hex digits come in either case (RFC 3986 2.1).
    return _PERCENT.sub(_either_case, re.escape(form))


def _either_case(match: re.Match[str]) -> str:
    return "%" + "".join(f"[{digit}{digit.lower()}]" for digit in match.groups())


class Redactor:
    """Replaces every spelling of the given secrets by `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms |= spellings(secret)
        # Longest first: a spelling that contains another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(_pattern, ordered))) if ordered else None

    @property
    def active(self) -> bool:
        """Whether there is anything to redact (a channel without secrets: nothing)."""
        return self._pattern is not None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """`value` with every string in it redacted (dicts, lists and tuples walked)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(item) for item in value)
        return value
