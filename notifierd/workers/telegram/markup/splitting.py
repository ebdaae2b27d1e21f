"""Where to cut a long text into messages, keeping each part's entities whole."""

from __future__ import annotations

from dataclasses import replace

from notifierd.workers.telegram.markup.entities import TEXT_LIMIT, Parsed, utf16_len


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
