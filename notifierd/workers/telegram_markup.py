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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

Format = Literal["text", "html", "markdownv2"]

#: Telegram's limit on one message's text after parsing, in characters (code points: the Bot
#: API server refuses a bot's text when TDLib's `utf8_length` of it exceeds
#: `message_text_length_max`, td/telegram/MessageContent.cpp). Parts are cut in UTF-16 units
#: (`split_spans`), never more than characters, so a part is within it whatever it holds.
TEXT_LIMIT = 4096

_SPACE = " \t\r\n\v\f"
_HTML_KINDS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_REFERENCES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")
_LETTERS = re.compile(r"[A-Za-z]*")
_EMOJI_URL = re.compile(r"tg://emoji\?id=([0-9]+)")
_MD_RESERVED = frozenset("_*[]()~`>#+-=|{}.!\n")
_MD_ESCAPED = frozenset("_*[]()~`>#+-=|{}.!\\")
#: Telegram's names of entity types, as its "Can't find end of ... entity" texts say them.
_MD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}


class MarkupError(ValueError):
    """Telegram would refuse the text: "can't parse entities: <reason>"."""

    def __init__(self, reason: str, position: int | None = None, detail: str = "") -> None:
        self.reason = reason
        #: Where in the text as sent (a code point index), when the reason has a place.
        self.position = position
        where = "" if position is None else f" at character {position + 1}"
        super().__init__(reason + where + detail)


@dataclass(frozen=True)
class Entity:
    """A formatted range `[start, end)` of the plain text. `argument` is a link's URL, a
    `pre` block's language, a custom emoji's id, or "expandable" for a blockquote."""

    kind: str
    start: int
    end: int
    argument: str = ""


@dataclass(frozen=True)
class Parsed:
    """Plain text and its entities, each listed before the entities nested inside it."""

    text: str
    entities: tuple[Entity, ...] = ()


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: an emoji outside the Basic Multilingual Plane is two."""
    return len(text.encode("utf-16-le")) // 2


def parse(text: str, fmt: Format) -> Parsed:
    """The plain text and entities Telegram would make of `text` sent in `fmt`; raises
    `MarkupError` where Telegram would answer "can't parse entities"."""
    if fmt == "html":
        return _HtmlParser(text).parse()
    if fmt == "markdownv2":
        return _MarkdownV2Parser(text).parse()
    return Parsed(text)


def render(parsed: Parsed, fmt: Format) -> str:
    """`parsed` written in `fmt` so that `parse` gives it back (HTML in its canonical tags)."""
    if fmt == "html":
        return _render(parsed, _html_open, _html_close, _html_text)
    if fmt == "markdownv2":
        return _render_markdown_v2(parsed)
    return parsed.text


# -- splitting -------------------------------------------------------------------------------


def _prefix_within(text: str, limit: int) -> int:
    """The length of the longest prefix of `text` of at most `limit` UTF-16 units."""
    end = min(len(text), limit)
    while (excess := utf16_len(text[:end]) - limit) > 0:
        end -= (excess + 1) // 2  # a code point is one or two units: never steps back too far
    return end


def split_spans(
    text: str, limit: int = TEXT_LIMIT, whole: tuple[tuple[int, int], ...] = ()
) -> list[tuple[int, int]]:
    """Where to cut `text` into parts of at most `limit` UTF-16 units, as `[start, end)` spans
    in order: at the last newline within the limit, else the last space, else hard, but not
    inside one of the `whole` ranges (a hard cut there moves back to its start). The newline
    or space at a cut belongs to no part (Telegram trims it anyway), and spans that are only
    whitespace are left out (Telegram refuses an empty text)."""
    spans: list[tuple[int, int]] = []
    start = 0
    while utf16_len(text[start:]) > limit:
        end = start + _prefix_within(text[start:], limit)
        # The separator itself is dropped, so it may sit just past the limit.
        head = text[start : end + 1]
        cut = head.rfind("\n")
        if cut <= 0:
            cut = head.rfind(" ")
        if cut > 0:
            spans.append((start, start + cut))
            start += cut + 1
        else:
            end = next((a for a, b in whole if start < a < end < b), end)
            spans.append((start, end))
            start = end
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def split(parsed: Parsed, limit: int = TEXT_LIMIT) -> list[Parsed]:
    """`parsed` cut into parts of at most `limit` UTF-16 units of plain text (`split_spans`).
    An entity that spans a cut is closed at the end of one part and opened again at the start
    of the next; a custom emoji, which must hold one whole emoji, is never cut."""
    emoji = tuple((e.start, e.end) for e in parsed.entities if e.kind == "custom_emoji")
    parts = []
    for start, end in split_spans(parsed.text, limit, emoji):
        entities = tuple(
            replace(e, start=max(e.start, start) - start, end=min(e.end, end) - start)
            for e in parsed.entities
            if e.start < end and e.end > start
        )
        parts.append(Parsed(parsed.text[start:end], entities))
    return parts


# -- rendering -------------------------------------------------------------------------------


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


# -- HTML ------------------------------------------------------------------------------------


@dataclass
class _Open:
    """An entity whose end is not yet found: its slot in the entity list, and where it began."""

    kind: str
    name: str
    argument: str
    start: int
    slot: int
    source: int


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.out: list[str] = []
        self.length = 0
        self.slots: list[Entity | None] = []
        self.stack: list[_Open] = []

    def at(self, i: int) -> str:
        """The character at `i`, or NUL past the end (TDLib reads a NUL-terminated string)."""
        return self.source[i] if i < len(self.source) else "\0"

    def emit(self, text: str) -> None:
        # Telegram removes every CR from a text (TDLib's clean_input_string), after parsing.
        if text != "\r":
            self.out.append(text)
            self.length += len(text)

    def open(self, kind: str, argument: str, source: int, name: str = "") -> None:
        self.stack.append(_Open(kind, name, argument, self.length, len(self.slots), source))
        self.slots.append(None)

    def close(self, argument: str | None = None) -> _Open:
        """End the innermost entity here; an empty one is dropped, as Telegram drops it."""
        top = self.stack.pop()
        if self.length > top.start:
            value = top.argument if argument is None else argument
            self.slots[top.slot] = Entity(top.kind, top.start, self.length, value)
        return top

    def result(self) -> Parsed:
        return Parsed("".join(self.out), tuple(e for e in self.slots if e is not None))


class _HtmlParser(_Parser):
    def parse(self) -> Parsed:
        i, size = 0, len(self.source)
        while i < size:
            char = self.source[i]
            if char == "&" and (decoded := self.reference(i)) is not None:
                self.emit(decoded[0])
                i = decoded[1]
            elif char != "<":
                self.emit(char)
                i += 1
            elif self.at(i + 1) == "/":
                i = self.end_tag(i)
            else:
                i = self.start_tag(i)
        if self.stack:
            name = self.stack[-1].name
            raise MarkupError(f'Can\'t find end tag corresponding to start tag "{name}"')
        self.merge_pre_code()
        return self.result()

    def reference(self, i: int) -> tuple[str, int] | None:
        """The character `&...;` at `i` stands for and where it ends, or None if Telegram
        leaves it as literal text. The ';' is optional, as in TDLib."""
        source = self.source
        if self.at(i + 1) == "#":
            hexadecimal = self.at(i + 2) == "x"
            digits = re.compile("[0-9a-fA-F]*" if hexadecimal else "[0-9]*")
            begin = i + 2 + hexadecimal
            match = digits.match(source, begin)
            assert match is not None
            end = match.end()
            code = int(match[0], 16 if hexadecimal else 10) if match[0] else 0
            if code == 0 or code >= 0x10FFFF or end - i >= 10:
                return None
            if 0xD800 <= code <= 0xDFFF:
                raise MarkupError(
                    "Text contains invalid Unicode characters after decoding HTML entities, "
                    "check for unmatched surrogate code units"
                )
            char = chr(code)
        else:
            match = _LETTERS.match(source, i + 1)
            assert match is not None
            end = match.end()
            if match[0] not in _NAMED_REFERENCES:
                return None
            char = _NAMED_REFERENCES[match[0]]
        return char, end + 1 if self.at(end) == ";" else end

    def skip_space(self, i: int) -> int:
        while i < len(self.source) and self.source[i] in _SPACE:
            i += 1
        return i

    def start_tag(self, begin: int) -> int:
        i = begin + 1
        while self.at(i) not in _SPACE + "\0>":
            i += 1
        if i >= len(self.source):
            raise MarkupError("Unclosed start tag", begin)
        name = self.source[begin + 1 : i].lower()
        if name not in _HTML_KINDS:
            raise MarkupError(f'Unsupported start tag "{name}"', begin)
        argument = ""
        while self.at(i) != ">":
            i = self.skip_space(i)
            if self.at(i) == ">":
                break
            attribute, i, value = self.attribute(name, begin, i)
            if value is None:
                if name == "blockquote" and attribute == "expandable":
                    argument = "expandable"
                continue
            argument = _tag_argument(name, attribute, value, argument)
        if name == "span":
            if argument != "spoiler":
                raise MarkupError('Tag "span" must have class "tg-spoiler"', begin)
            argument = ""
        self.open(_HTML_KINDS[name], argument, begin, name)
        return i + 1

    def attribute(self, name: str, begin: int, i: int) -> tuple[str, int, str | None]:
        """One attribute at `i`: its name, where it ends, and its value (None without '=')."""
        start = i
        while self.at(i) not in _SPACE + "\0=>/\"'":
            i += 1
        attribute = self.source[start:i]
        if not attribute:
            raise MarkupError(f'Empty attribute name in the tag "{name}"', begin)
        i = self.skip_space(i)
        if self.at(i) != "=":
            if i >= len(self.source):
                raise MarkupError(f'Unclosed start tag "{name}"', begin)
            return attribute, i, None
        i = self.skip_space(i + 1)
        if i >= len(self.source):
            raise MarkupError(f'Unclosed start tag "{name}"', begin)
        quote = self.source[i]
        if quote not in "'\"":
            match = _NAME_TOKEN.match(self.source, i)
            assert match is not None
            if match.end() >= len(self.source):
                raise MarkupError("Unclosed start tag", begin)
            if self.source[match.end()] not in _SPACE + ">":
                raise MarkupError("Unexpected end of name token", i)
            return attribute, match.end(), match[0].lower()
        value: list[str] = []
        i += 1
        while i < len(self.source) and self.source[i] != quote:
            if self.source[i] == "&" and (decoded := self.reference(i)) is not None:
                value.append(decoded[0])
                i = decoded[1]
            else:
                value.append(self.source[i])
                i += 1
        i += 1
        if i >= len(self.source):
            raise MarkupError("Unclosed start tag", begin)
        return attribute, i, "".join(value)

    def end_tag(self, begin: int) -> int:
        if not self.stack:
            raise MarkupError("Unexpected end tag", begin)
        i = begin + 2
        while self.at(i) not in _SPACE + "\0>":
            i += 1
        name = self.source[begin + 2 : i].lower()
        i = self.skip_space(i)
        if self.at(i) != ">":
            raise MarkupError("Unclosed end tag", begin)
        expected = self.stack[-1].name
        if name and name != expected:
            raise MarkupError(
                "Unmatched end tag", begin, f', expected "</{expected}>", found "</{name}>"'
            )
        top = self.stack[-1]
        emoji = top.kind == "custom_emoji" and self.length > top.start
        if emoji and (not top.argument.isdigit() or int(top.argument) == 0):
            raise MarkupError("Invalid custom emoji identifier specified")
        # A link without href links to its own text.
        text = "".join(self.out[top.start :]) if top.kind == "text_link" else ""
        self.close(top.argument or text if top.kind == "text_link" else None)
        return i + 1

    def merge_pre_code(self) -> None:
        """`<pre><code class="language-x">` (either way round, same range) is one `pre` block
        in language x; a `code` alone keeps no language."""
        slots = self.slots
        for index, entity in enumerate(slots):
            if entity is None or entity.kind not in ("pre", "code"):
                continue
            inner = next((e for e in slots[index + 1 :] if e is not None), None)
            if inner is None or (inner.start, inner.end) != (entity.start, entity.end):
                continue
            if {entity.kind, inner.kind} == {"pre", "code"}:
                code = entity if entity.kind == "code" else inner
                if code.argument:
                    slots[index] = Entity("pre", entity.start, entity.end, code.argument)
                    slots[slots.index(inner)] = None
        for index, entity in enumerate(slots):
            if entity is not None and entity.kind == "code" and entity.argument:
                slots[index] = replace(entity, argument="")


def _tag_argument(name: str, attribute: str, value: str, current: str) -> str:
    """The entity argument an attribute gives, per TDLib; other attributes are ignored."""
    if name == "a" and attribute == "href":
        return value
    if name == "code" and attribute == "class" and value.startswith("language-"):
        return value[len("language-") :]
    if name == "span" and attribute == "class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if name == "tg-emoji" and attribute == "emoji-id":
        return value
    if name == "blockquote" and attribute == "expandable":
        return "expandable"
    return current


# -- MarkdownV2 ------------------------------------------------------------------------------


class _MarkdownV2Parser(_Parser):
    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.in_blockquote = False
        #: At the start of a line, where '>' begins (or continues) a blockquote.
        self.line_start = True

    def parse(self) -> Parsed:
        i, size = 0, len(self.source)
        while i < size:
            char, following = self.source[i], self.at(i + 1)
            if char == "\\" and "\x01" <= following <= "~":
                self.emit(following)
                if following != "\r":
                    self.line_start = following == "\n"
                i += 2
                continue
            verbatim = self.stack and self.stack[-1].kind in ("code", "pre")
            if char not in ("`" if verbatim else _MD_RESERVED):
                self.emit(char)
                if char != "\r":
                    self.line_start = False
                i += 1
            elif self.ends_entity(i):
                i = self.end_entity(i)
            else:
                i = self.start_entity(i)
        self.finish()
        return self.result()

    def ends_entity(self, i: int) -> bool:
        if not self.stack:
            return False
        char, following = self.source[i], self.at(i + 1)
        if self.in_blockquote and char == "\n" and following != ">":
            return True
        kind = self.stack[-1].kind
        return {
            "bold": char == "*",
            "italic": char == "_" and following != "_",
            "underline": char == "_" and following == "_",
            "strikethrough": char == "~",
            "spoiler": char == "|" and following == "|",
            "code": char == "`",
            "pre": self.source.startswith("```", i),
            "text_link": char == "]",
            "custom_emoji": char == "]",
        }.get(kind, False)

    def reserved(self, i: int) -> MarkupError:
        return MarkupError(
            f"Character '{self.source[i]}' is reserved and must be escaped with the preceding '\\'",
            i,
        )

    def start_entity(self, i: int) -> int:
        char, following = self.source[i], self.at(i + 1)
        if char == "\n":
            self.emit("\n")
            self.line_start = True
            return i + 1
        if char == ">":
            if not self.line_start:
                raise self.reserved(i)
            if not self.in_blockquote:
                self.open("blockquote", "", i)
                self.in_blockquote = True
            return i + 1
        simple = {"*": "bold", "~": "strikethrough", "[": "text_link"}
        if char in simple:
            self.open(simple[char], "", i)
            return i + 1
        if char == "_":
            double = following == "_"
            self.open("underline" if double else "italic", "", i)
            return i + 1 + double
        if char == "|" and following == "|":
            self.open("spoiler", "", i)
            return i + 2
        if char == "!" and following == "[":
            self.open("custom_emoji", "", i)
            return i + 2
        if char == "`":
            return self.start_code(i)
        raise self.reserved(i)

    def start_code(self, i: int) -> int:
        if not self.source.startswith("```", i):
            self.open("code", "", i)
            return i + 1
        begin, j = i, i + 3
        end = j
        while self.at(end) not in _SPACE + "\0`":
            end += 1
        language = ""
        if end != j and end < len(self.source) and self.source[end] != "`":
            language, j = self.source[j:end], end
        # One line break right after the opening (and language) is not part of the block.
        if self.at(j) in "\r\n":
            pair = self.at(j + 1) in "\r\n" and self.at(j + 1) != self.at(j)
            j += 1 + pair
        self.open("pre", language, begin)
        return j

    def end_entity(self, i: int) -> int:
        top = self.stack[-1]
        if self.source[i] == "\n" and top.kind != "blockquote":
            # '||' right before the line break that ends a blockquote makes it expandable.
            if top.kind == "spoiler" and top.source == i - 2 and len(self.stack) > 1:
                self.stack.pop()
                top = self.stack[-1]
                top.argument = "expandable"
            if top.kind != "blockquote":
                raise self.cant_find_end(top)
        if top.kind == "blockquote":
            self.close()
            self.in_blockquote = False
            self.emit("\n")
            self.line_start = True
            return i + 1
        if top.kind in ("text_link", "custom_emoji"):
            return self.end_link(i, top)
        self.close()
        width = {"underline": 2, "spoiler": 2, "pre": 3}
        return i + width.get(top.kind, 1)

    def end_link(self, i: int, top: _Open) -> int:
        if self.at(i + 1) != "(":
            if top.kind == "custom_emoji":
                raise MarkupError("The entity must contain a tg://emoji or tg://time URL")
            self.close("".join(self.out[top.start :]))
            return i + 1
        j, url = i + 2, []
        while j < len(self.source) and self.source[j] != ")":
            if self.source[j] == "\\" and "\x01" <= self.at(j + 1) <= "~":
                url.append(self.source[j + 1])
                j += 2
            else:
                url.append(self.source[j])
                j += 1
        if j >= len(self.source):
            raise MarkupError("Can't find end of a URL", i + 2)
        argument = "".join(url)
        if top.kind == "custom_emoji":
            match = _EMOJI_URL.fullmatch(argument)
            if match is None:
                raise MarkupError("Invalid tg://emoji or tg://time URL specified")
            argument = match[1]
        self.close(argument)
        return j + 1

    def cant_find_end(self, top: _Open) -> MarkupError:
        name = "PreCode" if top.kind == "pre" and top.argument else _MD_NAMES[top.kind]
        return MarkupError(f"Can't find end of {name} entity", top.source)

    def finish(self) -> None:
        if self.in_blockquote:
            top = self.stack[-1]
            if top.kind == "spoiler" and top.source == len(self.source) - 2:
                self.stack.pop()
                self.stack[-1].argument = "expandable"
            if self.stack[-1].kind == "blockquote":
                self.close()
        if self.stack:
            raise self.cant_find_end(self.stack[-1])
