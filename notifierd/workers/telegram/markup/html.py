"""Telegram's HTML, parsed as TDLib's `parse_html` parses it."""

from __future__ import annotations

import re
from dataclasses import replace

from notifierd.workers.telegram.markup.entities import Entity, MarkupError, Parsed
from notifierd.workers.telegram.markup.parser import SPACE, Parser

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


class HtmlParser(Parser):
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
        while i < len(self.source) and self.source[i] in SPACE:
            i += 1
        return i

    def start_tag(self, begin: int) -> int:
        i = begin + 1
        while self.at(i) not in SPACE + "\0>":
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
        while self.at(i) not in SPACE + "\0=>/\"'":
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
            if self.source[match.end()] not in SPACE + ">":
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
        while self.at(i) not in SPACE + "\0>":
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
