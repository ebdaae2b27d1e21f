"""What runs inside a worker process.

The loop: take a batch of deliveries from the job queue, run the worker's `send` for each,
report the outcomes on the result pipe (the messages: `wire`). `wire.STOP` on the job queue
ends the loop after everything before it is done. The process also ends by itself when its
parent is gone.

Everything this process tells its parent passes through `RedactingPipe`: the channel's secrets
never leave it, in an outcome's error or a log event, however a remote spelt them.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import structlog
from pydantic import BaseModel
from setproctitle import setproctitle

from notifierd.errors import (
    ChannelMisconfigured,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.logs import configure_child_logging
from notifierd.messages import Delivery, Outcome
from notifierd.processes import wire
from notifierd.processes.wire import ChildMessage, JobMessage, received
from notifierd.redaction import Redactor, secret_values
from notifierd.states import OutcomeKind
from notifierd.workers.base import Worker
from notifierd.workers.registry import load_worker_class

EXIT_BOOT_FAILURE = 3  # the worker could not start (import, params, open() failed)
PARENT_CHECK_SECONDS = 1.0
FLUSH_SECONDS = 0.005  # outcomes older than this are sent even in the middle of a batch
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    channel: str
    index: int
    worker_type: str
    params: BaseModel
    log_level: str


def child_main(
    spec: ChildSpec,
    jobs: Queue[JobMessage],
    results: Connection,
    current: Synchronized[int],
    cooldown: Synchronized[float],
) -> None:
    """Entry point of a worker process (started with the spawn context).

    `current` tells the parent which delivery is being sent (so that, should this process die,
    only that one is charged an attempt); `cooldown` is shared by the channel's processes: the
    `time.monotonic()` before which none of them may send (a remote's Retry-After, a
    misconfiguration)."""
    _die_with_parent()
    parent = _parent_pid()
    if os.getppid() != parent:
        return  # the parent died while this process started (before it could ask to die too)
    # Ctrl-C reaches the whole process group; the parent decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setproctitle(f"notifierd: {spec.channel} worker {spec.index}")
    pipe = RedactingPipe(results, Redactor(channel_secrets(spec)))
    configure_child_logging(spec.log_level, pipe.send)
    log = structlog.get_logger("notifierd.worker").bind(channel=spec.channel, worker=spec.index)
    try:
        worker = _start_worker(spec)
    except Exception:
        log.exception("worker.start_failed")
        sys.exit(EXIT_BOOT_FAILURE)
    try:
        pipe.send(wire.ready(os.getpid()))
        _serve(worker, _Links(jobs, pipe, current, cooldown), parent)
    except BrokenPipeError:
        # The parent is gone: an exiting process closes its files a moment before the kernel
        # sends its children their death signal. Nobody is left to tell.
        pass
    finally:
        with contextlib.suppress(Exception):
            worker.close()


def _parent_pid() -> int:
    """The pid of the process that started this one, even if it has died since (then
    `os.getppid()` already names another)."""
    parent = multiprocessing.parent_process()
    return os.getppid() if parent is None or parent.pid is None else parent.pid


def channel_secrets(spec: ChildSpec) -> list[str]:
    """What the worker type declares secret in the channel's params; should the type not load
    (its start-up failure is reported next), every `SecretStr` among them."""
    try:
        return load_worker_class(spec.worker_type).secrets(spec.params)
    except Exception:
        return secret_values(spec.params)


class RedactingPipe:
    """The result pipe, with the channel's secrets removed from what is sent on it."""

    def __init__(self, connection: Connection, redactor: Redactor) -> None:
        self._connection = connection
        self._redactor = redactor

    def send(self, message: ChildMessage) -> None:
        # A channel without secrets (the null worker's hot path) sends as it is.
        if self._redactor.active:
            message = self._redacted(message)
        self._connection.send(wire.encode(message))

    def _redacted(self, message: ChildMessage) -> ChildMessage:
        match message:
            case (wire.OUTCOMES, answered):
                return wire.outcomes([self._outcome(outcome) for outcome in answered])
            case (wire.LOG, level, event):
                return wire.log_event(level, self._redactor.value(event))
        return message

    def _outcome(self, outcome: Outcome) -> Outcome:
        if outcome.error is None:
            return outcome
        return outcome._replace(error=self._redactor.text(outcome.error))


def _start_worker(spec: ChildSpec) -> Worker:
    worker_class = load_worker_class(spec.worker_type)
    worker = worker_class(spec.channel, spec.params)
    worker.open()
    return worker


@dataclass(frozen=True)
class _Links:
    """The process's connections to its parent."""

    jobs: Queue[JobMessage]
    results: RedactingPipe
    current: Synchronized[int]
    cooldown: Synchronized[float]


def _serve(worker: Worker, links: _Links, parent: int) -> None:
    while True:
        try:
            batch = links.jobs.get(timeout=PARENT_CHECK_SECONDS)
        except queue.Empty:
            if os.getppid() != parent:
                return  # the parent died: nobody would read our outcomes
            continue
        if batch is wire.STOP:
            return
        pending: list[Outcome] = []
        flushed_at = time.monotonic()
        offset, deliveries = batch
        for delivery in received(deliveries):
            links.current.value = delivery.id
            outcome = _attempt(worker, delivery, offset, links.cooldown)
            links.current.value = 0
            pending.append(outcome)
            if time.monotonic() - flushed_at >= FLUSH_SECONDS:
                links.results.send(wire.outcomes(pending))
                pending, flushed_at = [], time.monotonic()
        if pending:
            links.results.send(wire.outcomes(pending))


def _attempt(
    worker: Worker, delivery: Delivery, offset: float, cooldown: Synchronized[float]
) -> Outcome:
    """Send, unless the delivery may not go now: its channel cools down, its lease is over
    (it was handed out again meanwhile), or its time-to-live passed while it waited here.
    Each is a `time.monotonic()` deadline: the Store's times plus `offset` (`wire.Handout`),
    so neither this host's wall clock nor its skew from the Store's decides."""
    now = time.monotonic()
    if now < cooldown.value or now >= delivery.leased_until + offset:
        return _outcome(delivery, OutcomeKind.UNSTARTED, None, now)
    if now >= delivery.expires_at + offset:
        error = "time-to-live passed before the attempt"
        return _outcome(delivery, OutcomeKind.EXPIRED, error, time.monotonic())
    outcome = run_send(worker, delivery)
    if outcome.retry_after is not None:
        # The siblings of this process read the same value: the whole channel waits.
        cooldown.value = max(cooldown.value, time.monotonic() + outcome.retry_after)
    return outcome


def run_send(worker: Worker, delivery: Delivery) -> Outcome:
    """Run one `send` and turn what happened into an outcome."""
    started = time.monotonic()
    try:
        worker.send(delivery)
    except RateLimited as exc:
        return _outcome(delivery, OutcomeKind.RATE_LIMITED, exc.message, started, exc.retry_after)
    except TemporaryFailure as exc:
        return _outcome(delivery, OutcomeKind.TEMPORARY, exc.message, started, exc.retry_after)
    except PermanentFailure as exc:
        return _outcome(delivery, OutcomeKind.PERMANENT, exc.message, started)
    except ChannelMisconfigured as exc:
        return _outcome(delivery, OutcomeKind.MISCONFIGURED, exc.message, started)
    except Exception as exc:
        # A bug in the worker, not a verdict of the remote: retry, and show the traceback.
        structlog.get_logger("notifierd.worker").exception(
            "worker.send_raised", channel=delivery.channel, delivery_id=delivery.id
        )
        error = f"worker raised {type(exc).__name__}: {exc}"
        return _outcome(delivery, OutcomeKind.TEMPORARY, error, started)
    return _outcome(delivery, OutcomeKind.DELIVERED, None, started)


def _outcome(
    delivery: Delivery,
    kind: OutcomeKind,
    error: str | None,
    started: float,
    retry_after: float | None = None,
) -> Outcome:
    return Outcome(
        delivery.id,
        delivery.lease_token,
        kind,
        retry_after=retry_after,
        error=error,
        duration=time.monotonic() - started,
    )


def _die_with_parent() -> None:
    """Ask Linux to end this process when the parent dies (no orphans after kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        libc: Any = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
