"""The fake Bot API's own reading of `parse_mode` HTML and MarkdownV2: the plain text a
message becomes, or Telegram's "can't parse entities" description.

Written apart from `notifierd.workers.telegram.markup` on purpose, so that a test passing
through the fake is evidence that the worker's markup is what Telegram accepts, not that one
parser agrees with itself. It follows the Bot API's "Formatting options" and the error texts of
TDLib (which the Bot API server runs: offsets are UTF-8 byte offsets), and is simpler: a tag
ends at the first '>' (no '>' inside quoted attribute values), attribute values are not
judged (but for a custom emoji's id), and MarkdownV2 has no custom emoji. Enough for what
the tests send; a test that needs more extends it here.
"""

from __future__ import annotations

import re

HTML_TAGS = {"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span"}
HTML_TAGS |= {"tg-spoiler", "tg-emoji", "code", "pre", "blockquote"}
_REFERENCE = re.compile(r"&(?:#x([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(lt|gt|amp|quot)(?![A-Za-z]));?")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTRIBUTE = re.compile(
    r"""\s*(?P<name>[^\s=>/"']+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|(?P<token>[A-Za-z0-9.-]*)))?"""
)
_SPOILER_CLASS = re.compile(r"""class\s*=\s*(["']?)tg-spoiler\1(?:\s|$)""")
_MD_RESERVED = "_*[]()~`>#+-=|{}.!"
#: MarkdownV2 markers: what opens an entity, and what closes it, longest first.
_MD_MARKERS = {"```": "Pre", "__": "Underline", "||": "Spoiler", "*": "Bold", "_": "Italic"}
_MD_MARKERS |= {"~": "Strikethrough", "`": "Code", "[": "TextUrl"}
_MD_CLOSERS = {"Pre": "```", "Underline": "__", "Spoiler": "||", "Bold": "*", "Italic": "_"}
_MD_CLOSERS |= {"Strikethrough": "~", "Code": "`", "TextUrl": "]"}


class EntityError(ValueError):
    """What follows "Bad Request: can't parse entities: " in Telegram's answer."""


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text as Telegram shows it; EntityError if Telegram cannot parse it. Legacy Markdown
    is not checked (no test sends it)."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        plain = _html(text)
    elif mode == "markdownv2":
        plain = _markdown_v2(text)
    else:
        plain = text
    return plain.replace("\r", "")


def _offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _html(text: str) -> str:
    out: list[str] = []
    open_tags: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("&", i) and (match := _REFERENCE.match(text, i)):
            code = int(match[1], 16) if match[1] else int(match[2]) if match[2] else None
            if code is None:
                out.append(_NAMED[match[3]])
            elif 0xD800 <= code <= 0xDFFF:
                raise EntityError(
                    "Text contains invalid Unicode characters after decoding HTML entities, "
                    "check for unmatched surrogate code units"
                )
            elif 0 < code < 0x10FFFF:
                out.append(chr(code))
            else:
                out.append(match[0])
            i = match.end()
            continue
        if text[i] != "<":
            out.append(text[i])
            i += 1
            continue
        # The name runs to a space or '>': "a < b" has the unsupported tag "".
        name = re.match(r"/?[^\s>]*", text[i + 1 :])
        assert name is not None
        if i + 1 + name.end() >= len(text) and not name[0].startswith("/"):
            raise EntityError(f"Unclosed start tag at byte offset {_offset(text, i)}")
        if not name[0].startswith("/") and name[0].lower() not in HTML_TAGS:
            offset = _offset(text, i)
            raise EntityError(f'Unsupported start tag "{name[0].lower()}" at byte offset {offset}')
        end = text.find(">", i)
        if end < 0:
            which = "end" if name[0].startswith("/") else "start"
            raise EntityError(f"Unclosed {which} tag at byte offset {_offset(text, i)}")
        _tag(text, i, text[i + 1 : end], open_tags)
        i = end + 1
    if open_tags:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')
    return "".join(out)


def _tag(text: str, at: int, inside: str, open_tags: list[str]) -> None:
    """Check one tag `<inside>` found at index `at`; keep `open_tags` up to date."""
    offset = _offset(text, at)
    if inside.startswith("/"):
        name = inside[1:].strip().lower()
        if not open_tags:
            raise EntityError(f"Unexpected end tag at byte offset {offset}")
        if name and name != open_tags[-1]:
            raise EntityError(
                f'Unmatched end tag at byte offset {offset}, expected "</{open_tags[-1]}>", '
                f'found "</{name}>"'
            )
        open_tags.pop()
        return
    name = re.split(r"\s", inside, maxsplit=1)[0].lower()
    attributes = inside[len(name) :]
    if name not in HTML_TAGS:
        raise EntityError(f'Unsupported start tag "{name}" at byte offset {offset}')
    rest = attributes
    while rest.strip():
        match = _ATTRIBUTE.match(rest)
        if match is None:
            raise EntityError(f'Empty attribute name in the tag "{name}" at byte offset {offset}')
        after = rest[match.end() :]
        if match["token"] is not None and after[:1] not in ("", " ", "\t", "\n"):
            token_at = _offset(text, at + 1 + len(inside) - len(rest) + match.start("token"))
            raise EntityError(f"Unexpected end of name token at byte offset {token_at}")
        rest = after
    if name == "span" and not _SPOILER_CLASS.search(attributes):
        raise EntityError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    if name == "tg-emoji" and not re.search(r"""emoji-id\s*=\s*["']?[1-9][0-9]*["'\s]""", inside):
        raise EntityError("Invalid custom emoji identifier specified")
    open_tags.append(name)


def _markdown_v2(text: str) -> str:
    out: list[str] = []
    #: Open entities: (Telegram's name of the type, byte offset of the marker).
    stack: list[tuple[str, int]] = []
    quote_open = False
    line_start = True
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) < 127:
            out.append(text[i + 1])
            line_start = text[i + 1] == "\n"
            i += 2
            continue
        top = stack[-1][0] if stack else ""
        if top in ("Code", "Pre"):
            closer = _MD_CLOSERS[top]
            if text.startswith(closer, i):
                stack.pop()
                i += len(closer)
            else:
                out.append(char)
                i += 1
            continue
        if char == "\n":
            if quote_open and not text.startswith(">", i + 1):
                if top == "Spoiler" and text[i - 2 : i] == "||":  # an expandable blockquote
                    stack.pop()
                    top = stack[-1][0]
                if top != "BlockQuote":
                    offset = stack[-1][1]
                    raise EntityError(f"Can't find end of {top} entity at byte offset {offset}")
                stack.pop()
                quote_open = False
            out.append("\n")
            line_start = True
            i += 1
            continue
        if char == ">" and line_start:
            if not quote_open:
                stack.append(("BlockQuote", _offset(text, i)))
                quote_open = True
            i += 1
            continue
        if char not in _MD_RESERVED:
            out.append(char)
            line_start = line_start and char == "\r"
            i += 1
            continue
        if top and top != "BlockQuote" and text.startswith(_MD_CLOSERS[top], i):
            if top == "Italic" and text.startswith("__", i):
                pass  # '__' inside italic opens underline
            else:
                i = _close(text, i, top, stack)
                continue
        opener = next((m for m in _MD_MARKERS if text.startswith(m, i)), None)
        if opener is None:
            raise EntityError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        stack.append((_MD_MARKERS[opener], _offset(text, i)))
        i += len(opener)
        if opener == "```":
            i = _pre_header(text, i)
    if quote_open and stack[-1][0] == "Spoiler" and text.endswith("||"):
        stack.pop()
    if quote_open and stack[-1][0] == "BlockQuote":
        stack.pop()
    if stack:
        name, offset = stack[-1]
        raise EntityError(f"Can't find end of {name} entity at byte offset {offset}")
    return "".join(out)


def _close(text: str, i: int, top: str, stack: list[tuple[str, int]]) -> int:
    """Close the innermost entity at `i`; where the text goes on after its closing marker."""
    stack.pop()
    i += len(_MD_CLOSERS[top])
    if top == "TextUrl" and text.startswith("(", i):
        url_at, i = i + 1, i + 1
        while i < len(text) and text[i] != ")":
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            raise EntityError(f"Can't find end of a URL at byte offset {_offset(text, url_at)}")
        i += 1
    return i


def _pre_header(text: str, i: int) -> int:
    """Past a pre block's language (a word right after the backticks) and one line break."""
    language = re.match(r"[^\s`]*", text[i:])
    assert language is not None
    if language[0] and text[i + len(language[0]) : i + len(language[0]) + 1] not in ("", "`"):
        i += len(language[0])
    for newline in ("\r\n", "\n\r", "\n", "\r"):
        if text.startswith(newline, i):
            return i + len(newline)
    return i
