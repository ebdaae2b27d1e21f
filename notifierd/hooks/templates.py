"""A channel's own text for a webhook's payload: `templates: {alertmanager: ..., grafana: ...}`
in Jinja2, compiled at config load (a syntax error is a config error naming the file and key)
and rendered in Jinja2's sandbox, which keeps a template from reaching Python's internals.

A template sees the payload's fields under the sender's names (`status`, `commonLabels`,
`alerts`, each alert's `labels`, `annotations`, `generatorURL` ...), `alerts` cut to the ones
that fit the channel's length limit, `omitted` (how many were cut) and `channel` (its name). Its
output goes to the channel as written, in the channel's format; the `literal` filter escapes a
value for that format (`{{ alert.annotations.summary | literal }}` on a Telegram channel in
`html`), and is the identity on a channel without markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from notifierd.errors import ConfigError

#: The webhook routes a template can be given for.
HOOKS = ("alertmanager", "grafana")


class RenderError(Exception):
    """A template failed on a payload: the description names the template."""


@dataclass(frozen=True)
class HookTemplate:
    key: str  # `templates.alertmanager`: how errors name it
    template: Template

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except Exception as exc:  # a sandboxed template can raise anything a filter raises
            raise RenderError(
                f"the channel's template {self.key} failed on this payload: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def compile_templates(
    where: str, sources: Mapping[str, str], literal: Callable[[str], str]
) -> dict[str, HookTemplate]:
    """The templates of one channel. `where` is `file: channels.NAME`; `literal` escapes a text
    for the channel's markup. Raises `ConfigError` listing every template that does not
    compile."""
    environment = SandboxedEnvironment(keep_trailing_newline=False)
    # Any value: a label is a string, but `{{ alerts | length | literal }}` is not.
    environment.filters["literal"] = lambda value: literal(str(value))
    compiled: dict[str, HookTemplate] = {}
    problems: list[str] = []
    for hook, source in sources.items():
        key = f"templates.{hook}"
        try:
            compiled[hook] = HookTemplate(key, environment.from_string(source))
        except TemplateSyntaxError as exc:
            problems.append(f"{where}.{key}: template error at line {exc.lineno}: {exc.message}")
    if problems:
        raise ConfigError("\n".join(problems))
    return compiled
