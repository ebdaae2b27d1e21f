"""Telegram's formatted text: HTML and MarkdownV2 parsed the way the Bot API parses them.

A channel's `format` says how its text is meant. `text` is sent without `parse_mode`, so every
character is literal. `html` and `markdownv2` are parsed here by Telegram's rules (TDLib's
`parse_html` and `parse_markdown_v2`, which the Bot API server runs; see the Bot API's
"Formatting options"), so that the daemon can:

- refuse at intake, with a 422 that says where and why, what Telegram would refuse after the
  client was told 204 ("Bad Request: can't parse entities: ...");
- measure a message as Telegram does: the characters of its plain text after parsing;
- strip the markup, to send the plain text when Telegram refuses the markup after all;
- split a long message between characters of its plain text, closing the entities open at a cut
  and opening them again in the next part, so that each part parses on its own.

A parse gives the plain text and its entities; positions are indices into the plain text
(Python code points). The error texts are Telegram's, with "at character N" (counted from 1 in
the text as sent) where Telegram says "at byte offset N".

What Telegram accepts but drops silently is accepted here too: an `&name;` other than the four
it knows stays literal text, an unknown attribute is ignored, a link whose URL Telegram
considers invalid becomes plain text (the URL is not judged here).

The modules: `entities` (the model and `MarkupError`), `parser` (what both parsers share),
`html`, `markdown_v2`, `rendering` (back to markup) and `splitting`.
"""

from __future__ import annotations

from notifierd.workers.telegram.markup.entities import (
    TEXT_LIMIT,
    Entity,
    Format,
    MarkupError,
    Parsed,
    utf16_len,
)
from notifierd.workers.telegram.markup.html import HtmlParser
from notifierd.workers.telegram.markup.markdown_v2 import MarkdownV2Parser
from notifierd.workers.telegram.markup.rendering import render
from notifierd.workers.telegram.markup.splitting import split, split_spans

__all__ = [
    "TEXT_LIMIT",
    "Entity",
    "Format",
    "MarkupError",
    "Parsed",
    "parse",
    "render",
    "split",
    "split_spans",
    "utf16_len",
]


def parse(text: str, fmt: Format) -> Parsed:
    """The plain text and entities Telegram would make of `text` sent in `fmt`; raises
    `MarkupError` where Telegram would answer "can't parse entities"."""
    if fmt == "html":
        return HtmlParser(text).parse()
    if fmt == "markdownv2":
        return MarkdownV2Parser(text).parse()
    return Parsed(text)
