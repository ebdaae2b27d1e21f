"""Telegram's MarkdownV2, parsed as TDLib's `parse_markdown_v2` parses it."""

from __future__ import annotations

import re

from notifierd.workers.telegram.markup.entities import MarkupError, Parsed
from notifierd.workers.telegram.markup.parser import SPACE, Open, Parser

_EMOJI_URL = re.compile(r"tg://emoji\?id=([0-9]+)")
_MD_RESERVED = frozenset("_*[]()~`>#+-=|{}.!\n")
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


class MarkdownV2Parser(Parser):
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
        while self.at(end) not in SPACE + "\0`":
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

    def end_link(self, i: int, top: Open) -> int:
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

    def cant_find_end(self, top: Open) -> MarkupError:
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
