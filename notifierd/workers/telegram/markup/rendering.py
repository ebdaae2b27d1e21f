"""Parsed text written back as HTML or MarkdownV2, so that parsing it gives it back."""

from __future__ import annotations

import re
from collections.abc import Callable

from notifierd.workers.telegram.markup.entities import Entity, Format, Parsed

_MD_ESCAPED = frozenset("_*[]()~`>#+-=|{}.!\\")


def render(parsed: Parsed, fmt: Format) -> str:
    """`parsed` written in `fmt` so that `parse` gives it back (HTML in its canonical tags)."""
    if fmt == "html":
        return _render(parsed, _html_open, _html_close, _html_text)
    if fmt == "markdownv2":
        return _render_markdown_v2(parsed)
    return parsed.text


_Marker = Callable[[Entity], str]
_Escape = Callable[[str, list[Entity]], str]


def _render(
    parsed: Parsed,
    open_tag: _Marker,
    close_tag: _Marker,
    escape: _Escape,
    join: Callable[[list[str]], str] = "".join,
) -> str:
    """Entities opened in list order and closed in reverse at each position: well nested,
    because parsed entities are (and parts of them stay) nested. `join` puts together the
    markers that meet at one position."""
    starting: dict[int, list[Entity]] = {}
    for entity in parsed.entities:
        starting.setdefault(entity.start, []).append(entity)
    out: list[str] = []
    active: list[Entity] = []
    for position in range(len(parsed.text) + 1):
        markers = [close_tag(e) for e in reversed(active) if e.end == position]
        active = [e for e in active if e.end != position]
        for entity in starting.get(position, ()):
            markers.append(open_tag(entity))
            active.append(entity)
        out.append(join(markers))
        if position < len(parsed.text):
            out.append(escape(parsed.text[position], active))
    return "".join(out)


def _html_escape(text: str, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _html_open(entity: Entity) -> str:
    kind, argument = entity.kind, entity.argument
    if kind == "text_link":
        return f'<a href="{_html_escape(argument, quote=True)}">'
    if kind == "pre" and argument:
        return f'<pre><code class="language-{_html_escape(argument, quote=True)}">'
    if kind == "blockquote" and argument:
        return "<blockquote expandable>"
    if kind == "custom_emoji":
        return f'<tg-emoji emoji-id="{argument}">'
    return f"<{_HTML_TAGS[kind]}>"


def _html_close(entity: Entity) -> str:
    if entity.kind == "pre" and entity.argument:
        return "</code></pre>"
    return f"</{_HTML_TAGS[entity.kind]}>"


def _html_text(char: str, active: list[Entity]) -> str:
    return _html_escape(char)


_HTML_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "spoiler": "tg-spoiler",
    "text_link": "a",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "custom_emoji": "tg-emoji",
}


def _md_open(entity: Entity) -> str:
    return {
        "bold": "*",
        "italic": "_",
        "underline": "__",
        "strikethrough": "~",
        "spoiler": "||",
        "code": "`",
        "pre": f"```{entity.argument}\n",
        "text_link": "[",
        "custom_emoji": "![",
        "blockquote": "**>" if entity.argument else ">",
    }[entity.kind]


def _md_close(entity: Entity) -> str:
    if entity.kind == "text_link":
        return "](" + re.sub(r"([)\\])", r"\\\1", entity.argument) + ")"
    if entity.kind == "custom_emoji":
        return f"](tg://emoji?id={entity.argument})"
    return {
        "bold": "*",
        "italic": "_",
        "underline": "__",
        "strikethrough": "~",
        "spoiler": "||",
        "code": "`",
        "pre": "```",
        "blockquote": "||" if entity.argument else "",
    }[entity.kind]


def _md_text(char: str, active: list[Entity]) -> str:
    if active and active[-1].kind in ("code", "pre"):
        return "\\" + char if char in "`\\" else char
    if char == "\n":
        # Inside a blockquote each line starts with '>'; a line without it would end the quote.
        return "\n>" if any(e.kind == "blockquote" for e in active) else "\n"
    return "\\" + char if char in _MD_ESCAPED else char


def _render_markdown_v2(parsed: Parsed) -> str:
    return _render(parsed, _md_open, _md_close, _md_text, _md_join)


def _md_join(markers: list[str]) -> str:
    """The markers with a CR between two that meet with '_' (italic next to underline):
    Telegram reads '___' greedily, and documents a CR as the way to separate them."""
    out = ""
    for marker in markers:
        if out.endswith("_") and marker.startswith("_"):
            out += "\r"
        out += marker
    return out
