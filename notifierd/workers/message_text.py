"""What a message's text may be by default, and how a refusal says why.

The default follows the remotes, which all take any Unicode text: a message is refused only
when it is blank or holds a character that is not text. Those are the control characters other
than the line feed, the tab and a carriage return that ends a line (`\\r\\n`); a lone carriage
return (it moves a terminal's cursor back over the line); and an unpaired surrogate, which a
JSON body can spell (`"\\ud83d"`) but no remote, nor UTF-8, can carry. Emoji, symbols,
Greek, CJK and the zero-width joiners of emoji sequences are all text.

A channel's `message_pattern` replaces the character rule (not the unpaired-surrogate one: such
a string cannot even be stored) and never the remote's length limit, which each worker type
checks in `Worker.check_message`.

The check runs on every request, so it is one search of a compiled expression: no loop over the
characters in Python. Positions in refusals count characters (code points) from 1.
"""

from __future__ import annotations

import re

#: C0 controls but \t and \n, DEL, the C1 controls and surrogates; a \r is one of them unless
#: a \n follows it. One character class: an alternation for the \r would double the search.
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def character_refusal(message: str, pattern: re.Pattern[str] | None) -> str | None:
    """None if the characters of `message` are acceptable, else the reason. `pattern` is the
    channel's own `message_pattern` (applied with fullmatch), None for the default rule."""
    if pattern is None:
        if not message or message.isspace():
            return "message must not be blank"
        index = _first_not_text(message)
    else:
        found = _SURROGATE.search(message)
        if found is None and pattern.fullmatch(message) is None:
            return "message does not match this channel's message_pattern"
        index = None if found is None else found.start()
    return None if index is None else _describe(message, index)


def _first_not_text(message: str) -> int | None:
    if "\r" in message:
        # Same length, so the same positions, with every \r\n line break made harmless.
        message = message.replace("\r\n", "\n\n")
    found = _NOT_TEXT.search(message)
    return None if found is None else found.start()


def _describe(message: str, index: int) -> str:
    char = message[index]
    where = f"U+{ord(char):04X} at position {index + 1} (characters counted from 1)"
    if "\ud800" <= char <= "\udfff":
        return f"message contains an unpaired surrogate, {where}: half of a pair, not a character"
    if char == "\r":
        what = f"a carriage return not followed by a line feed, {where}"
    else:
        what = f"the control character {where}"
    return (
        f"message contains {what}; line breaks (\\n or \\r\\n) and tabs are the only "
        "control characters allowed"
    )


def too_long(length: int, limit: int, unit: str = "characters") -> str:
    """The refusal of a message longer than the remote takes, in the unit the remote counts."""
    return f"message is {length} {unit} long; this channel accepts at most {limit}"
