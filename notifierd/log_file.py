"""The parent's log file (`--log-file`), made to live beside logrotate and to fail quietly.

- Before each write the path is checked (as the standard library's WatchedFileHandler does):
  when another file is at the path (logrotate's `create` moved ours away and made a new one),
  the lines go to that one; while nothing is there, a file that was moved keeps the lines
  (logrotate creates the new file next, or sends SIGHUP) and a file that was removed is left. A
  file truncated under it (`copytruncate`) is written on from its new end, being open for
  appending. SIGHUP (`reopen`) leaves the file at once.
- A write that fails (disk full, directory gone, permissions) loses its lines, never the
  daemon: one line says so on stderr at most once a minute, every write tries the file again,
  and a line says when it is written again and how many lines were lost.
- Rotation by size (`path.1` ... `path.N`) happens only when `max_bytes` is set. Its names are
  logrotate's: the two are not meant to run on the same file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

REPORT_INTERVAL = 60.0  # seconds between two lines about a failing log file

Report = Callable[[dict[str, Any]], None]


class LogFile:
    def __init__(
        self,
        path: Path,
        max_bytes: int = 0,
        backups: int = 0,
        report: Report | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        #: Where lines about the file itself go (stderr, set by the Output that writes here).
        self.report: Report = report or (lambda event: None)
        self._clock = clock
        self._lock = threading.Lock()
        self._stream: TextIO | None = None
        self._identity = (0, 0)  # st_dev, st_ino of the open file
        self._size = 0
        self._lost = 0  # lines lost since the file last took a write
        self._failing = False
        self._last_report: float | None = None

    def open(self) -> None:
        """Open (and create) the file and its directory now: the start-up check. Raises
        OSError. Later opens create no directory: one removed at run time is an error."""
        with self._lock:
            if self._stream is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._open()

    def write(self, line: str) -> None:
        self.write_lines(line + "\n")

    def write_lines(self, data: str) -> None:
        """Whole lines, each ending with a newline."""
        with self._lock:
            try:
                self._follow_path()
                self._write(data)
            except OSError as exc:
                self._close(quietly=True)
                self._failed(exc, data.count("\n"))
            else:
                if self._failing:
                    self._recovered()

    def reopen(self) -> None:
        """Close the file; the next line opens whatever is at the path now."""
        with self._lock:
            self._close(quietly=True)

    def close(self) -> None:
        with self._lock:
            self._close(quietly=True)

    # -- the path under the open file -----------------------------------------------------------

    def _follow_path(self) -> None:
        if self._stream is None:
            return
        try:
            found = self.path.stat()
        except FileNotFoundError:
            # Not created here: logrotate's `create` would find the path taken.
            if os.fstat(self._stream.fileno()).st_nlink == 0:
                self._close(quietly=True)  # removed: the next open says why it cannot be
            return
        if (found.st_dev, found.st_ino) != self._identity:
            self._close(quietly=True)
        elif found.st_size < self._size:
            self._size = found.st_size  # truncated: appending goes on from the new end

    def _open(self) -> TextIO:
        stream = self.path.open("a", encoding="utf-8")
        opened = os.fstat(stream.fileno())
        self._stream = stream
        self._identity = (opened.st_dev, opened.st_ino)
        self._size = opened.st_size
        return stream

    def _close(self, quietly: bool) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                # Closing flushes: what it could not write is lost like any failed write.
                if not quietly:
                    raise

    # -- writing and rotating -------------------------------------------------------------------

    def _write(self, data: str) -> None:
        if not self.max_bytes:
            self._append(data, len(data.encode("utf-8")))
            return
        # A file is rotated before the line that would take it past `max_bytes` (as the
        # standard library's RotatingFileHandler does), so the path always holds the newest.
        chunk: list[str] = []
        chunk_size = 0
        for line in data.splitlines(keepends=True):
            size = len(line.encode("utf-8"))
            if self._stream is None:
                self._open()
            if self._size + chunk_size + size > self.max_bytes and self._size + chunk_size:
                if chunk:
                    self._append("".join(chunk), chunk_size)
                    chunk, chunk_size = [], 0
                self._rotate()
            chunk.append(line)
            chunk_size += size
        if chunk:
            self._append("".join(chunk), chunk_size)

    def _append(self, text: str, size: int) -> None:
        stream = self._stream or self._open()
        stream.write(text)
        stream.flush()
        self._size += size

    def _rotate(self) -> None:
        self._close(quietly=False)
        self._size = 0
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{index}")
            if source.exists():
                source.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    # -- failing and recovering -----------------------------------------------------------------

    def _failed(self, exc: OSError, lines: int) -> None:
        self._failing = True
        self._lost += lines
        now = self._clock()
        if self._last_report is not None and now - self._last_report < REPORT_INTERVAL:
            return
        self._last_report = now
        self.report(
            {
                "event": "log_file.write_failed",
                "level": "error",
                "path": str(self.path),
                "error": str(exc),
                "lost_lines": self._lost,
                "hint": f"the daemon goes on; lines are lost until the file can be written "
                f"again (at most one such line per {REPORT_INTERVAL:.0f} s)",
            }
        )

    def _recovered(self) -> None:
        event = {
            "event": "log_file.recovered",
            "level": "warning",
            "path": str(self.path),
            "lost_lines": self._lost,
        }
        self._failing = False
        self._lost = 0
        self.report(event)
