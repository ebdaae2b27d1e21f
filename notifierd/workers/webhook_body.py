"""The templates of the `webhook` worker: its request body, and placeholders in its URL.

A body is written in one of two ways, told apart by what it holds:

- `{message}`-style placeholders (`{message}`, `{recipient}`, `{channel}`, `{delivery_id}`,
  `{attempt}`); other braces (a JSON body's own) are left as they are;
- a Jinja2 template, once it holds `{{ ... }}` or `{% ... %}`, rendered in Jinja2's sandbox
  (as the webhook receivers' templates are) with the same names as variables. A name the
  template does not know is an error, not an empty string.

Either way each value is written escaped for the body's format, so that any text keeps the
body well-formed: in `json`, as the inside of a JSON string (`"text": "{message}"`; quotes,
backslashes and line breaks escaped, Cyrillic and emoji as they are); in `form`,
URL-encoded (`text={message}`); in `text`, as it is. In Jinja2, `| tojson` writes a value
as a whole JSON value instead (`"attempt": {{ attempt | tojson }}`). The URL takes
placeholders only, each value percent-encoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Literal
from urllib.parse import quote, quote_plus

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

BodyFormat = Literal["json", "form", "text"]
#: What a template may use, and the values a check at config load fills in.
SAMPLE: dict[str, str | int] = {
    "message": 'A "sample" message\nwith two lines ✅',
    "recipient": "ops",
    "channel": "alerts",
    "delivery_id": 1,
    "attempt": 1,
}
PLACEHOLDER = re.compile(r"\{(" + "|".join(SAMPLE) + r")\}")
CONTENT_TYPES: dict[BodyFormat, str] = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "text": "text/plain; charset=utf-8",
}
ENCODERS: dict[BodyFormat, Callable[[str], str]] = {
    "json": lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    "form": quote_plus,
    "text": lambda value: value,
}
#: The body when none is given: the channel, the recipient and the message.
DEFAULT_BODIES: dict[BodyFormat, str] = {
    "json": '{"channel": "{channel}", "recipient": "{recipient}", "message": "{message}"}',
    "form": "channel={channel}&recipient={recipient}&message={message}",
    "text": "{message}",
}


class BodyError(ValueError):
    """A template that does not compile, or fails on the values of one delivery."""


def is_jinja(source: str) -> bool:
    return "{{" in source or "{%" in source


class BodyTemplate:
    """A compiled body template, rendered for the values of each delivery."""

    def __init__(self, source: str, body_format: BodyFormat) -> None:
        self.format = body_format
        self._source = source
        self._encode = ENCODERS[body_format]
        self._jinja = None
        if is_jinja(source):
            environment = SandboxedEnvironment(
                undefined=StrictUndefined, finalize=self._finalize, keep_trailing_newline=True
            )
            # `tojson` with Cyrillic as it is, not \u escapes.
            environment.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
            try:
                self._jinja = environment.from_string(source)
                parsed = environment.parse(source)
            except TemplateSyntaxError as exc:
                raise BodyError(f"template error at line {exc.lineno}: {exc.message}") from None
            # Jinja2's own globals (range, dict, namespace ...) are no variables of ours.
            self.names = meta.find_undeclared_variables(parsed) - set(environment.globals)
        else:
            self.names = set(PLACEHOLDER.findall(source))

    def _finalize(self, value: object) -> str:
        # `tojson` gives markup-safe JSON: written as it is; anything else is escaped.
        if isinstance(value, Markup):
            return str(value)
        return self._encode("" if value is None else str(value))

    def render(self, values: Mapping[str, str | int]) -> str:
        """The body for these values; `BodyError` if the template fails on them, or if a
        `json` body is not JSON once filled."""
        if self._jinja is None:
            body = PLACEHOLDER.sub(lambda m: self._encode(str(values[m.group(1)])), self._source)
        else:
            try:
                body = self._jinja.render(values)
            except TemplateError as exc:
                raise BodyError(f"the body template failed: {type(exc).__name__}: {exc}") from None
        if self.format == "json":
            try:
                json.loads(body)
            except ValueError as exc:
                raise BodyError(
                    f"the body is not JSON once filled in ({exc}); a value is written as the "
                    'inside of a JSON string: put it in quotes ("{message}"), or write a whole '
                    "JSON value with {{ attempt | tojson }}"
                ) from None
        return body


def fill_url(template: str, values: Mapping[str, str | int]) -> str:
    """The URL with each placeholder replaced by its value, percent-encoded."""
    return PLACEHOLDER.sub(lambda m: quote(str(values[m.group(1)]), safe=""), template)


def url_names(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))
