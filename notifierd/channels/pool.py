"""A channel's worker processes, as slots in explicit states (`states.SlotState`; the legal moves
and what makes each are listed in `states.SLOT_TRANSITIONS`).

A slot whose process dies is restarted with backoff. A process that dies before it said it was
ready (a start-up failure) three times in a row puts its slot, and the channel, in FATAL instead
of looping: the operator decides.

The pool decides; the processes are handles it gets from `spawn` (`processes.handle`'s
`WorkerProcess` in the daemon, a fake in the unit tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import structlog

from notifierd.messages import Delivery, Outcome
from notifierd.states import SLOT_TRANSITIONS, SlotState

log = structlog.get_logger("notifierd.channel")

BOOT_RETRIES = 3  # start-up failures in a row before the channel is FATAL
BOOT_BACKOFF = (0.5, 1.0, 2.0)
CRASH_BACKOFF_FIRST = 0.1
CRASH_BACKOFF_MAX = 10.0
STABLE_SECONDS = 10.0  # a process that ran this long resets its crash backoff


class WorkerHandle(Protocol):
    """The parent's handle on one worker process, as the channel's parts use it."""

    #: Deliveries handed to the process and not yet answered, by id.
    in_flight: dict[int, Delivery]

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None:
        """Ask the process to end after what it holds."""

    def kill(self) -> None: ...

    def hand(self, deliveries: list[Delivery], monotonic_offset: float) -> None:
        """Send the deliveries; their times on the Store's clock plus `monotonic_offset` are
        the process's `time.monotonic()` deadlines (`wire.Handout`)."""

    def current_delivery(self) -> int | None:
        """The id of the delivery the process is sending right now, if any."""

    def take_outcomes(self, outcomes: list[Outcome]) -> list[tuple[Outcome, Delivery]]:
        """Forget the answered deliveries; the outcomes still expected, each with its
        delivery."""


H = TypeVar("H", bound=WorkerHandle)


class IllegalTransition(RuntimeError):
    """A slot was asked to move where `states.SLOT_TRANSITIONS` does not lead."""


class WorkerSlot(Generic[H]):
    """Position `index` among a channel's worker processes, across restarts."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = SlotState.IDLE
        self.process: H | None = None
        #: The process said it was ready. Kept through STOPPING: a process that ends before
        #: that failed to start.
        self.ready = False
        self.boot_failures = 0
        self.crash_backoff = CRASH_BACKOFF_FIRST
        self.started_at = 0.0
        self.restart: asyncio.TimerHandle | None = None

    def move(self, to: SlotState) -> None:
        if to not in SLOT_TRANSITIONS[self.state]:
            raise IllegalTransition(f"worker slot {self.index} cannot go from {self.state} to {to}")
        self.state = to

    def room(self, prefetch: int) -> int:
        """How many more deliveries its process may hold."""
        if self.state is not SlotState.RUNNING or self.process is None:
            return 0
        return max(0, prefetch - len(self.process.in_flight))

    def cancel_restart(self) -> None:
        if self.restart is not None:
            self.restart.cancel()
            self.restart = None


class WorkerPool(Generic[H]):
    """The worker slots of one channel: `activate` / `deactivate` them, and tell the pool what
    their processes did (`ready`, `exited`). `spawn` makes the (unstarted) process of the slot
    at an index."""

    def __init__(
        self,
        channel: str,
        size: int,
        spawn: Callable[[int], H],
        *,
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.slots: list[WorkerSlot[H]] = [WorkerSlot(index) for index in range(size)]
        #: Why the channel is FATAL, while it is.
        self.fatal_reason: str | None = None
        self._channel = channel
        self._spawn = spawn
        self._on_restart = on_restart
        self._active = False
        self._log = log.bind(channel=channel)

    @property
    def active(self) -> bool:
        """The channel wants its workers (activated, not deactivated since)."""
        return self._active

    def activate(self) -> None:
        """Start a process in every slot that has none; clears a FATAL state."""
        self.fatal_reason = None
        self._active = True
        for slot in self.slots:
            slot.boot_failures = 0
            if slot.state in (SlotState.IDLE, SlotState.BACKOFF, SlotState.FATAL):
                self._start(slot)

    def deactivate(self) -> None:
        """Each process finishes what it holds, then ends; no restart is due any more."""
        self._active = False
        for slot in self.slots:
            if slot.state is SlotState.BACKOFF:
                slot.cancel_restart()
                slot.move(SlotState.IDLE)
            elif slot.state in (SlotState.STARTING, SlotState.RUNNING):
                slot.move(SlotState.STOPPING)
                assert slot.process is not None
                slot.process.stop()

    def ready(self, process: H) -> None:
        """`process` said it is ready to take deliveries."""
        slot = self.slot_of(process)
        slot.ready = True
        if slot.state is SlotState.STARTING:
            slot.move(SlotState.RUNNING)
        self._log.info("worker.ready", worker=slot.index, pid=process.pid)

    def exited(self, process: H) -> None:
        """`process` ended: start another, now or later, or none."""
        slot = self.slot_of(process)
        slot.process = None
        code = process.exitcode
        if slot.state is SlotState.STOPPING and code == 0:
            self._log.info("worker.stopped", worker=slot.index, pid=process.pid)
            if self._active:
                self._start(slot)
            else:
                slot.move(SlotState.IDLE)
            return
        self._on_restart()
        ran = time.monotonic() - slot.started_at
        self._log.error(
            "worker.died",
            worker=slot.index,
            pid=process.pid,
            exit_code=code,
            ready=slot.ready,
            ran_seconds=round(ran, 2),
        )
        if not self._active:
            slot.move(SlotState.IDLE)
        elif not slot.ready:
            self._boot_failed(slot)
        else:
            slot.boot_failures = 0
            if ran >= STABLE_SECONDS:
                slot.crash_backoff = CRASH_BACKOFF_FIRST
            self._back_off(slot, slot.crash_backoff)
            slot.crash_backoff = min(slot.crash_backoff * 2, CRASH_BACKOFF_MAX)

    def slot_of(self, process: H) -> WorkerSlot[H]:
        return next(slot for slot in self.slots if slot.process is process)

    def stopped_on_purpose(self, process: H) -> bool:
        """`process` was asked to end, and the channel does not want it back."""
        return self.slot_of(process).state is SlotState.STOPPING and not self._active

    def processes(self) -> list[H]:
        return [slot.process for slot in self.slots if slot.process is not None]

    def rooms(self, prefetch: int) -> list[tuple[H, int]]:
        """The processes that may take more deliveries now, with how many each."""
        return [
            (slot.process, room)
            for slot in self.slots
            if (room := slot.room(prefetch)) > 0 and slot.process is not None
        ]

    def kill_all(self) -> None:
        for process in self.processes():
            process.kill()

    @property
    def backing_off(self) -> bool:
        return any(slot.state is SlotState.BACKOFF for slot in self.slots)

    @property
    def starting(self) -> bool:
        """Some process has not said yet that it is ready."""
        return any(slot.process is not None and not slot.ready for slot in self.slots)

    def _boot_failed(self, slot: WorkerSlot[H]) -> None:
        slot.boot_failures += 1
        if slot.boot_failures < BOOT_RETRIES:
            self._back_off(slot, BOOT_BACKOFF[slot.boot_failures - 1])
            return
        slot.move(SlotState.FATAL)
        self.fatal_reason = (
            f"worker {slot.index} failed to start {slot.boot_failures} times in a row"
        )
        self._log.critical(
            "channel.fatal",
            reason=self.fatal_reason,
            hint=f"fix the cause logged above, then run: notifierctl start {self._channel}",
        )
        self.deactivate()

    def _back_off(self, slot: WorkerSlot[H], delay: float) -> None:
        slot.move(SlotState.BACKOFF)
        slot.restart = asyncio.get_running_loop().call_later(delay, self._restart, slot)

    def _restart(self, slot: WorkerSlot[H]) -> None:
        slot.restart = None
        if slot.state is SlotState.BACKOFF:
            self._start(slot)

    def _start(self, slot: WorkerSlot[H]) -> None:
        slot.cancel_restart()
        slot.move(SlotState.STARTING)
        slot.ready = False
        process = self._spawn(slot.index)
        slot.process = process
        slot.started_at = time.monotonic()
        process.start()
        self._log.debug("worker.started", worker=slot.index, pid=process.pid)
