"""Where the parent's log lines go: stderr and, optionally, a file (`notifierd.log_file`).

structlog renders each event once per format (console or JSON) and writes the line straight to
these sinks. The standard library's logging machinery (a LogRecord, a formatter chain) is kept
out of the way: the access log and the per-attempt lines are written for every message, and
that machinery costs more than the rendering itself (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from notifierd.log_file import LogFile

Renderer = Callable[[WrappedLogger, str, EventDict], Any]


class Output:
    """The last structlog processor of the parent: renders the event for each sink, writes it,
    and ends the chain."""

    def __init__(
        self, stream: TextIO, console: bool, file: LogFile | None, journal: bool = False
    ) -> None:
        self._stream = stream
        self._file = file
        if file is not None:
            file.report = self.report
        # stderr is the journal: each line starts with its syslog priority (sd-daemon(3)), so
        # that `journalctl -p err` finds the errors.
        self._journal = journal
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
        self._queue(self._stream_text(event, line), line)

    def report(self, event: EventDict) -> None:
        """A line about the log file itself: to stderr only, at once."""
        event.setdefault("logger", "notifierd.log_file")
        event.setdefault("timestamp", _stamp.format(time.time()))
        self._emit(self._stream_text(event, render_json(event)))

    def _stream_text(self, event: EventDict, line: str) -> str:
        if self._console is not None:
            # The console renderer takes the event apart: it gets a copy.
            line = str(self._console(None, "", dict(event)))
        if self._journal:
            prefix = _PRIORITIES.get(str(event.get("level")), _DEFAULT_PRIORITY)
            line = prefix + line.replace("\n", "\n" + prefix)
        return f"{line}\n"

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
    shape and level filter as structlog's chain, without walking the chain, which costs more
    than rendering and writing the line do. Until the parent's logging is configured (tests,
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
    """One JSON line, by orjson: far faster than the json module, and the access log and the
    per-attempt lines are rendered for every message. It is asked first with no options: a
    `default` or OPT_NON_STR_KEYS slows every call down, and the hot lines never need them
    (figures: docs/performance.md)."""
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
_PRIORITIES = {
    "debug": "<7>",
    "info": "<6>",
    "warning": "<4>",
    "error": "<3>",
    "exception": "<3>",
    "critical": "<2>",
}
_DEFAULT_PRIORITY = "<6>"
_LEVEL_NAMES = {
    level: logging.getLevelName(level).lower()
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
}
