"""The parent's handle on one worker process: its job queue, its result pipe, and what it holds.

Each process has a job queue and a result pipe of its own, not shared with its siblings: a
process killed while it holds a shared queue's lock would leave that lock taken forever and
stall every sibling (multiprocessing's locks are not released by the death of their holder).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized

import structlog

from notifierd.messages import Delivery, Outcome
from notifierd.processes import wire
from notifierd.processes.child import ChildSpec, child_main
from notifierd.processes.wire import ChildMessage, JobMessage

log = structlog.get_logger("notifierd.supervisor")

REAP_SECONDS = 2.0
MessageHandler = Callable[["WorkerProcess", ChildMessage], None]
ExitHandler = Callable[["WorkerProcess"], None]


class WorkerProcess:
    """One running (or finished) worker process of a channel."""

    def __init__(
        self,
        context: SpawnContext,
        spec: ChildSpec,
        cooldown: Synchronized[float],
        on_message: MessageHandler,
        on_exit: ExitHandler,
    ) -> None:
        self.spec = spec
        #: Deliveries handed to this process and not yet answered, by id.
        self.in_flight: dict[int, Delivery] = {}
        self._context = context
        self._on_message = on_message
        self._on_exit = on_exit
        self._jobs: Queue[JobMessage] = context.Queue()
        self._results, child_end = context.Pipe(duplex=False)
        self._current: Synchronized[int] = context.Value("q", 0, lock=False)
        self._process: SpawnProcess = context.Process(
            target=child_main,
            args=(spec, self._jobs, child_end, self._current, cooldown),
            name=f"{spec.channel}-worker-{spec.index}",
            daemon=False,
        )
        self._child_end: Connection | None = child_end
        self._exited = False
        self._stop_sent = False
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        # Kept from the start: the Process's own property checks its state at every call,
        # and the per-attempt line asks for it for every message.
        return self._pid

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode

    @property
    def alive(self) -> bool:
        return not self._exited

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._process.start()
        self._pid = self._process.pid
        # The parent must not keep the child's end open, or it would never see EOF.
        if self._child_end is not None:
            self._child_end.close()
            self._child_end = None
        loop.add_reader(self._results.fileno(), self._drain)
        loop.add_reader(self._process.sentinel, self._reap)

    def hand(self, deliveries: list[Delivery], monotonic_offset: float) -> None:
        for delivery in deliveries:
            self.in_flight[delivery.id] = delivery
        self._jobs.put(wire.handout(deliveries, monotonic_offset))

    def stop(self) -> None:
        """Ask the process to end after what it holds (the sentinel)."""
        if not self._stop_sent and not self._exited:
            self._stop_sent = True
            with contextlib.suppress(ValueError, OSError):
                self._jobs.put(wire.STOP)

    def kill(self) -> None:
        if not self._exited:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    def current_delivery(self) -> int | None:
        """The id of the delivery the process is sending right now, if any."""
        value = int(self._current.value)
        return value or None

    def take_outcomes(self, outcomes: list[Outcome]) -> list[tuple[Outcome, Delivery]]:
        """Forget the answered deliveries; returns the outcomes that were still expected, each
        with its delivery."""
        answered = []
        for outcome in outcomes:
            delivery = self.in_flight.pop(outcome.id, None)
            if delivery is not None:
                answered.append((outcome, delivery))
        return answered

    def _drain(self) -> None:
        try:
            while self._results.poll():
                self._on_message(self, wire.decode(self._results.recv()))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self._results.fileno())

    def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._process.sentinel)
        self._drain()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self._results.fileno())
        # The sentinel turns readable as the child closes its files on exit, a moment before
        # the kernel makes it a zombie that can be reaped: wait for that moment.
        self._process.join(timeout=REAP_SECONDS)
        self._exited = True
        self._results.close()
        self._jobs.cancel_join_thread()  # what is left in the queue is in the Store anyway
        self._jobs.close()
        self._on_exit(self)


# multiprocessing's resource tracker (a process it starts with the first queue) removes the
# queues' named semaphores when the daemon is killed with -9, as it should, and warns about
# each of these "leaks" on stderr: noise nobody can act on. It takes its warning filters from
# this process's -W options.
QUIET_RESOURCE_TRACKER = "ignore:resource_tracker:UserWarning"


def spawn_context() -> SpawnContext:
    if QUIET_RESOURCE_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(QUIET_RESOURCE_TRACKER)
    # Never fork from the running loop and its threads: start children fresh.
    return multiprocessing.get_context("spawn")
