"""Logging set-up for the parent and the worker processes.

The parent alone writes log output (console or JSON, stderr and optionally a file). Worker
processes send their events over their result pipe (`ChildLogShipper`) and the parent re-emits
them with the worker's channel and pid bound, so lines from many processes never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def level_number(level: str) -> int:
    return LEVELS.get(level.lower(), logging.INFO)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


LIBRARY_LOGGERS = ("asyncio", "aiohttp", "urllib3", "multiprocessing")


class LogFiles:
    """The parent's log file handlers; `reopen` (on SIGHUP) lets an external logrotate move
    the file away: the next line goes to a new file at the configured path."""

    def __init__(self, handlers: list[logging.FileHandler]) -> None:
        self._handlers = handlers

    def reopen(self) -> None:
        for handler in self._handlers:
            with handler.lock or contextlib.nullcontext():
                if handler.stream is not None:
                    handler.stream.close()
                    handler.stream = None
                # FileHandler opens a new stream at the next record.


def configure_parent_logging(
    level: str,
    log_format: str = "auto",
    log_file: Path | None = None,
    *,
    verbose: int = 0,
    max_bytes: int = 0,
    backups: int = 0,
) -> LogFiles:
    """Route structlog and stdlib logging (aiohttp's access log included) through one
    renderer: console on a terminal (or when asked), JSON otherwise. `verbose` 1 is debug for
    notifierd; 2 also lets the libraries' debug output through."""
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    shared = _shared_processors()
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handlers: list[logging.Handler] = [_handler(logging.StreamHandler(sys.stderr), console)]
    files: list[logging.FileHandler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        files.append(file_handler)
        handlers.append(_handler(file_handler, False))
    number = logging.DEBUG if verbose else level_number(level)
    root = logging.getLogger()
    root.handlers = handlers
    root.setLevel(number)
    library_level = number if verbose >= 2 else max(number, logging.INFO)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    return LogFiles(files)


def _handler(handler: logging.Handler, console: bool) -> logging.Handler:
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=console and sys.stderr.isatty())
        if console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    return handler


def reemit(level: str, event: MutableMapping[str, Any], **context: Any) -> None:
    """Write in the parent an event a worker process sent (see `ChildLogShipper`)."""
    name = str(event.pop("logger", "notifierd.worker"))
    message = str(event.pop("event", ""))
    event.pop("level", None)
    event.pop("timestamp", None)
    fields = {**event, **context}
    structlog.get_logger(name).log(level_number(level), message, **fields)


Send = Callable[[tuple[Any, ...]], None]


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
            self._send(("log", level, plain))


class _StdlibToShipper(logging.Handler):
    """Ships stdlib log records of a worker process (requests, urllib3, ...) to the parent."""

    def __init__(self, shipper: ChildLogShipper) -> None:
        super().__init__()
        self._shipper = shipper

    def emit(self, record: logging.LogRecord) -> None:
        event: EventDict = {"event": record.getMessage(), "logger": record.name}
        if record.exc_info:
            event["exception"] = logging.Formatter().formatException(record.exc_info)
        self._shipper.ship(record.levelname.lower(), event)


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
