"""Where the parent's log lines go: stderr and, optionally, a size-rotated file.

structlog renders each event once per format (console or JSON) and writes the line straight to
these sinks. The standard library's logging machinery (a LogRecord, a formatter chain) is kept
out of the way: the access log and the per-attempt lines are written for every message, and
that machinery cost several times what the rendering itself does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

Renderer = Callable[[WrappedLogger, str, EventDict], Any]


class RotatingFile:
    """A log file rotated by size (`path.1` ... `path.N`), reopened on demand (SIGHUP)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._stream: TextIO | None = None
        self._size = 0

    def write(self, line: str) -> None:
        self.write_lines(line + "\n")

    def write_lines(self, data: str) -> None:
        """Whole lines, each ending with a newline: in one write, unless the file must be
        rotated on the way. A file is rotated before the line that would take it past
        `max_bytes` (as the standard library's RotatingFileHandler does), so the path always
        holds the newest lines."""
        with self._lock:
            if self._stream is None:
                self._open()  # the size that counts is that of the file at the path now
            if not self.max_bytes:
                self._append(data, len(data.encode("utf-8")))
                return
            chunk: list[str] = []
            chunk_size = 0
            for line in data.splitlines(keepends=True):
                size = len(line.encode("utf-8"))
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

    def reopen(self) -> None:
        """Close the file; the next line opens whatever is at the path now (logrotate moved
        the old one away)."""
        with self._lock:
            self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = self.path.open("a", encoding="utf-8")
        self._size = self._stream.tell()
        return self._stream

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _rotate(self) -> None:
        self._close()
        self._size = 0
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{index}")
            if source.exists():
                source.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))


class Output:
    """The last structlog processor of the parent: renders the event for each sink, writes it,
    and ends the chain."""

    def __init__(self, stream: TextIO, console: bool, file: RotatingFile | None) -> None:
        self._stream = stream
        self._file = file
        # Lines written from the event loop's thread wait for the end of the loop's turn and go
        # out in one write per sink: under load one system call carries many lines, when idle a
        # line leaves at once. Other threads write straight through.
        self._pending: list[str] = []
        self._pending_file: list[str] = []
        self._flush_scheduled = False
        self._loop: tuple[asyncio.AbstractEventLoop | None, int] = (None, 0)
        self._console: Renderer | None = (
            structlog.dev.ConsoleRenderer(colors=stream.isatty()) if console else None
        )

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        self.write(event)
        raise structlog.DropEvent

    def write(self, event: EventDict) -> None:
        line = render_json(event)
        if self._console is None:
            self._queue(f"{line}\n", line)
        else:
            # The console renderer takes the event apart: it gets a copy.
            self._queue(f"{self._console(None, '', dict(event))}\n", line)

    def flush(self) -> None:
        self._flush_scheduled = False
        lines, self._pending = self._pending, []
        file_lines, self._pending_file = self._pending_file, []
        if lines:
            self._emit("".join(lines))
        if file_lines and self._file is not None:
            self._file.write_lines("".join(file_lines))

    def _queue(self, stream_line: str, file_line: str) -> None:
        loop = self._loop_of_this_thread()
        if loop is None:
            self._emit(stream_line)
            if self._file is not None:
                self._file.write(file_line)
            return
        self._pending.append(stream_line)
        if self._file is not None:
            self._pending_file.append(f"{file_line}\n")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)

    def _loop_of_this_thread(self) -> asyncio.AbstractEventLoop | None:
        """The loop running on this thread, if any. The last one seen is remembered with its
        thread: asyncio's own lookup makes a getpid() system call on Python 3.11, and this runs
        for every line."""
        loop, thread = self._loop
        if thread == threading.get_ident() and loop is not None and loop.is_running():
            return loop
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._loop = (loop, threading.get_ident())
        return loop

    def _emit(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr must not stop us
            self._stream.write(text)
            self._stream.flush()


class HotLine:
    """A line written for every message (the access log, the per-attempt line): the same sinks,
    shape and level filter as structlog's chain, without walking the chain, which costs twice
    what rendering and writing the line do. Until the parent's logging is configured (tests,
    tools) it goes through structlog like any other line."""

    _output: Output | None = None
    _level = logging.INFO

    def __init__(self, logger: str, event: str) -> None:
        self.logger = logger
        self.event = event

    @classmethod
    def configure(cls, output: Output | None, level: int) -> None:
        cls._output = output
        cls._level = level

    def write(self, level: int, fields: dict[str, Any]) -> None:
        output = HotLine._output
        if output is None:
            structlog.get_logger(self.logger).log(level, self.event, **fields)
            return
        if level < HotLine._level:
            return
        fields["event"] = self.event
        fields["logger"] = self.logger
        fields["level"] = _LEVEL_NAMES.get(level) or logging.getLevelName(level).lower()
        fields["timestamp"] = _stamp.format_micros(time.time_ns() // 1000)
        output.write(fields)


class NamedLogger:
    """What structlog wraps in the parent: only a name (for `add_logger_name`); `Output`
    writes every event before it would be called."""

    def __init__(self, name: str) -> None:
        self.name = name


def named_logger_factory(*args: Any) -> NamedLogger:
    return NamedLogger(str(args[0]) if args else "notifierd")


class StdlibBridge(logging.Handler):
    """Sends the records of libraries that use the standard `logging` (aiohttp, asyncio) to
    the same output, in the same shape."""

    def __init__(self, output: Output) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = record_event(record)
            event["level"] = record.levelname.lower()
            event["timestamp"] = _stamp.format(record.created)
            self._output.write(event)
        except Exception:
            self.handleError(record)


def record_event(record: logging.LogRecord) -> EventDict:
    """A stdlib log record as a structlog event: message, logger name, exception text."""
    event: EventDict = {"event": record.getMessage(), "logger": record.name}
    if record.exc_info:
        event["exception"] = logging.Formatter().formatException(record.exc_info)
    return event


def render_json(event: EventDict) -> str:
    """One JSON line. orjson renders a line in a tenth of the time the json module takes (the
    access log and the per-attempt lines are rendered for every message). It is asked first
    with no options: a `default` or OPT_NON_STR_KEYS makes every call half as slow again, and
    the hot lines never need them."""
    try:
        return orjson.dumps(event).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _render_odd(event)


def _render_odd(event: EventDict) -> str:
    """An event orjson refused as it is: a value of a type it does not know (shown by its
    repr), a key that is not a string; what it refuses even so (an integer beyond 64 bits)
    goes through the json module."""
    try:
        return orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(event, ensure_ascii=False, default=repr)


class UtcTimestamp:
    """A structlog processor: `timestamp` as ISO 8601 UTC with microseconds. The date and time
    of day are formatted once per second rather than for every line."""

    def __init__(self) -> None:
        # One attribute, replaced whole: a thread never sees one second's prefix with another's.
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        event["timestamp"] = self.format(time.time())
        return event

    def format(self, created: float) -> str:
        return self.format_micros(round(created * 1_000_000))

    def format_micros(self, micros: int) -> str:
        """`micros`: microseconds since the epoch, as `time.time_ns() // 1000` gives them
        (integer arithmetic only: this runs twice per message)."""
        second = micros // 1_000_000
        cached = self._cached
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached
        return f"{cached[1]}.{micros - second * 1_000_000:06d}Z"


_stamp = UtcTimestamp()
_LEVEL_NAMES = {
    level: logging.getLevelName(level).lower()
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
}
