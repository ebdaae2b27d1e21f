"""Logging set-up for the parent and the worker processes.

The parent alone writes log output (console or JSON, stderr and optionally a file). Worker
processes send their events over their result pipe (`ChildLogShipper`) and the parent re-emits
them with the worker's channel and pid bound, so lines from many processes never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from notifierd.errors import ConfigError
from notifierd.log_file import LogFile
from notifierd.log_output import (
    HotLine,
    Output,
    StdlibBridge,
    UtcTimestamp,
    named_logger_factory,
    record_event,
)
from notifierd.processes.wire import LogEvent, log_event
from notifierd.systemd import stderr_is_journal

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def level_number(level: str) -> int:
    return LEVELS.get(level.lower(), logging.INFO)


LIBRARY_LOGGERS = ("asyncio", "aiohttp", "urllib3", "multiprocessing")


class LogFiles:
    """The parent's log outputs; `reopen` (on SIGHUP) lets an external logrotate move the
    file away: the next line goes to a new file at the configured path."""

    def __init__(self, output: Output, files: list[LogFile]) -> None:
        self._output = output
        self._files = files

    def reopen(self) -> None:
        for file in self._files:
            file.reopen()

    def flush(self) -> None:
        """Write out what waits for the end of the event loop's turn (call at exit)."""
        self._output.flush()


def configure_parent_logging(
    level: str,
    log_format: str = "auto",
    log_file: Path | None = None,
    *,
    verbose: int = 0,
    max_bytes: int = 0,
    backups: int = 0,
) -> LogFiles:
    """structlog, and the libraries' stdlib logging (aiohttp, asyncio), to stderr (console on
    a terminal or when asked, JSON otherwise) and to the optional file (JSON).
    `verbose` 1 is debug for notifierd; 2 also lets the libraries' debug output through.
    ConfigError if the file cannot be opened for writing."""
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    file = open_log_file(log_file, max_bytes, backups) if log_file is not None else None
    output = Output(sys.stderr, console, file, journal=stderr_is_journal())
    number = logging.DEBUG if verbose else level_number(level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            UtcTimestamp(),
            structlog.processors.format_exc_info,
            output,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=named_logger_factory,
        cache_logger_on_first_use=True,
    )
    HotLine.configure(output, number)
    root = logging.getLogger()
    root.handlers = [StdlibBridge(output)]
    root.setLevel(number)
    library_level = number if verbose >= 2 else max(number, logging.INFO)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    return LogFiles(output, [file] if file is not None else [])


def open_log_file(path: Path, max_bytes: int, backups: int) -> LogFile:
    file = LogFile(path, max_bytes, backups)
    try:
        file.open()
    except OSError as exc:
        raise ConfigError(
            f"setting log_file (--log-file or NOTIFIERD_LOG_FILE): cannot write {path}: {exc}"
        ) from None
    return file


def reemit(level: str, event: MutableMapping[str, Any], **context: Any) -> None:
    """Write in the parent an event a worker process sent (see `ChildLogShipper`)."""
    name = str(event.pop("logger", "notifierd.worker"))
    message = str(event.pop("event", ""))
    event.pop("level", None)
    event.pop("timestamp", None)
    fields = {**event, **context}
    structlog.get_logger(name).log(level_number(level), message, **fields)


Send = Callable[[LogEvent], None]


class ChildLogShipper:
    """The last structlog processor in a worker process: sends the event to the parent."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        self.ship(event.pop("level", method), event)
        raise structlog.DropEvent

    def ship(self, level: str, event: EventDict) -> None:
        plain = {key: _plain(value) for key, value in event.items()}
        # OSError: the parent is gone; this process is about to end anyway.
        with contextlib.suppress(OSError):
            self._send(log_event(level, plain))


class _StdlibToShipper(logging.Handler):
    """Ships stdlib log records of a worker process (requests, urllib3, ...) to the parent."""

    def __init__(self, shipper: ChildLogShipper) -> None:
        super().__init__()
        self._shipper = shipper

    def emit(self, record: logging.LogRecord) -> None:
        self._shipper.ship(record.levelname.lower(), record_event(record))


def configure_child_logging(level: str, send: Send) -> None:
    shipper = ChildLogShipper(send)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.format_exc_info,
            shipper,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number(level)),
        # stdlib loggers only for their names: the shipper drops every event before them.
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers = [_StdlibToShipper(shipper)]
    root.setLevel(level_number(level))
    # urllib3's debug lines carry whole request URLs, and with them the secrets some remotes
    # want there (a bot token in the path, a gateway password in the query): never ship them.
    logging.getLogger("urllib3").setLevel(max(level_number(level), logging.INFO))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
