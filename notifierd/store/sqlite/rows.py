"""Many rows in one statement.

`executemany` runs its statement once per row: SQLite resets and restarts the program for each.
The rows of one transaction (the jobs a loop turn accepted, the outcomes of a batch) go in one
`INSERT ... VALUES (...), (...), ...` per chunk instead: about 2% of the parent's instructions
per message (measured with callgrind) for the jobs, deliveries and attempts together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

#: Bound parameters per statement: under 999, the smallest limit an SQLite build may have (the
#: default before 3.32), so that any build takes every chunk.
MAX_PARAMETERS = 900


class RowsInsert:
    """`INSERT INTO <table> (<columns>) VALUES <row>, <row>, ...` for a given row shape. The
    shape may hold literals besides its `?`s: `(?, ?, 'queued', ?)`."""

    def __init__(self, head: str, row: str) -> None:
        self.head = head
        self.row = row
        self.width = row.count("?")
        self.chunk = MAX_PARAMETERS // self.width

    def sql(self, rows: int) -> str:
        """The statement for `rows` rows (one row: the statement `executemany` would run)."""
        return f"{self.head} VALUES {', '.join([self.row] * rows)}"

    def run(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
        for chunk in self._chunks(rows):
            conn.execute(self.sql(len(chunk)), [value for row in chunk for value in row])

    def _chunks(self, rows: Sequence[Sequence[Any]]) -> Iterator[Sequence[Sequence[Any]]]:
        for start in range(0, len(rows), self.chunk):
            yield rows[start : start + self.chunk]
