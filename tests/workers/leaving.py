"""What a worker process tells its parent about one send, for tests that a channel's secrets
never leave it: the send runs as in the process (`run_send`, logging set up as there, at debug
level), and the outcome and every log event go through the process's `RedactingPipe`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

import structlog

from notifierd.logs import configure_child_logging
from notifierd.messages import Delivery
from notifierd.processes import wire
from notifierd.processes.child import RedactingPipe, run_send
from notifierd.redaction import Redactor
from notifierd.workers.base import Worker


class _Collected:
    """Stands in for the result pipe's connection: keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[wire.RawMessage] = []

    def send(self, message: wire.RawMessage) -> None:
        self.sent.append(message)


@dataclass(frozen=True)
class Left:
    """What left the process: the outcome's error and the log events, as the parent got them."""

    error: str | None
    events: list[dict[str, Any]]

    def texts(self) -> list[str]:
        return [self.error or "", *(repr(event) for event in self.events)]


@contextmanager
def worker_process_logging(send: Any) -> Iterator[None]:
    """Logging as a worker process has it (debug level, every event to `send`), put back as
    it was afterwards."""
    root = logging.getLogger()
    urllib3 = logging.getLogger("urllib3")
    saved = (list(root.handlers), root.level, urllib3.level, structlog.get_config())
    configure_child_logging("debug", send)
    # Not cached: a module's logger would keep this set-up after the test.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield
    finally:
        root.handlers, root.level = saved[0], saved[1]
        urllib3.setLevel(saved[2])
        structlog.configure(**saved[3])


def send_in_worker_process(worker: Worker, delivery: Delivery) -> Left:
    """Send `delivery` as a worker process does, and return what it told its parent."""
    collected = _Collected()
    pipe = RedactingPipe(cast(Connection, collected), Redactor(type(worker).secrets(worker.params)))
    with worker_process_logging(pipe.send):
        outcome = run_send(worker, delivery)
    pipe.send(("outcomes", [outcome]))
    received = [wire.decode(message) for message in collected.sent]  # as the parent reads it
    [(_, [left])] = [message for message in received if message[0] == "outcomes"]
    events = [message[2] for message in received if message[0] == "log"]
    return Left(left.error, events)
