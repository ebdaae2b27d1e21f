"""What the HTML and MarkdownV2 parsers share: the plain text so far, and the entities open
and found."""

from __future__ import annotations

from dataclasses import dataclass

from notifierd.workers.telegram.markup.entities import Entity, Parsed

SPACE = " \t\r\n\v\f"


@dataclass
class Open:
    """An entity whose end is not yet found: its slot in the entity list, and where it began."""

    kind: str
    name: str
    argument: str
    start: int
    slot: int
    source: int


class Parser:
    """The state both parsers build: the plain text so far, the entities found (`slots`, in
    the order they began) and those still open (`stack`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.out: list[str] = []
        self.length = 0
        self.slots: list[Entity | None] = []
        self.stack: list[Open] = []

    def at(self, i: int) -> str:
        """The character at `i`, or NUL past the end (TDLib reads a NUL-terminated string)."""
        return self.source[i] if i < len(self.source) else "\0"

    def emit(self, text: str) -> None:
        # Telegram removes every CR from a text (TDLib's clean_input_string), after parsing.
        if text != "\r":
            self.out.append(text)
            self.length += len(text)

    def open(self, kind: str, argument: str, source: int, name: str = "") -> None:
        self.stack.append(Open(kind, name, argument, self.length, len(self.slots), source))
        self.slots.append(None)

    def close(self, argument: str | None = None) -> Open:
        """End the innermost entity here; an empty one is dropped, as Telegram drops it."""
        top = self.stack.pop()
        if self.length > top.start:
            value = top.argument if argument is None else argument
            self.slots[top.slot] = Entity(top.kind, top.start, self.length, value)
        return top

    def result(self) -> Parsed:
        return Parsed("".join(self.out), tuple(e for e in self.slots if e is not None))
