"""One virtual channel at run time: its worker processes and its dispatcher.

The dispatcher claims due deliveries from the Store as the workers have room, paces them
(channel rate, per-recipient interval, Retry-After cool-down: shared with the channels that
spend the same remote budget, see rate_groups) and hands them out in batches.
Outcomes come back through the worker processes' pipes and are applied to the Store here.

Worker processes are restarted with backoff when they die. A process that dies before it is
ready (start-up failure) three times in a row puts the channel in FATAL instead of looping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import structlog

from notifierd.channels.probing import ProbeSchedule
from notifierd.channels.rate_groups import RateGroup
from notifierd.config import Channel
from notifierd.log_output import HotLine
from notifierd.logs import reemit
from notifierd.messages import Delivery, Outcome
from notifierd.metrics import Metrics
from notifierd.processes import wire
from notifierd.processes.child import ChildSpec
from notifierd.processes.handle import WorkerProcess
from notifierd.processes.wire import ChildMessage
from notifierd.states import ChannelState, DeliveryState, OutcomeKind
from notifierd.store import Store

log = structlog.get_logger("notifierd.channel")
attempt_line = HotLine("notifierd.channel", "delivery.attempt")

BOOT_RETRIES = 3  # start-up failures in a row before the channel is FATAL
BOOT_BACKOFF = (0.5, 1.0, 2.0)
CRASH_BACKOFF_FIRST = 0.1
CRASH_BACKOFF_MAX = 10.0
STABLE_SECONDS = 10.0  # a process that ran this long resets its crash backoff
IDLE_POLL_SECONDS = 5.0  # a safety net: the dispatcher is woken by events, not by polling


class WorkerSlot:
    """Position `index` among a channel's worker processes, across restarts."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: WorkerProcess | None = None
        self.boot_failures = 0
        self.crash_backoff = CRASH_BACKOFF_FIRST
        self.started_at = 0.0
        self.restart: asyncio.TimerHandle | None = None

    def cancel_restart(self) -> None:
        if self.restart is not None:
            self.restart.cancel()
            self.restart = None


class ChannelRunner:
    """Runs one channel: `activate` / `deactivate` its workers, `wake` its dispatcher."""

    def __init__(
        self,
        channel: Channel,
        store: Store,
        context: SpawnContext,
        log_level: str,
        *,
        on_store_error: Callable[[Exception], None],
        on_worker_exit: Callable[[], None],
        metrics: Metrics,
        rate_group: RateGroup,
    ) -> None:
        self.channel = channel
        self.store = store
        self.fatal_reason: str | None = None
        self.misconfigured: str | None = None
        self.last_error: str | None = None
        self._active = False
        self._context = context
        self._log_level = log_level
        self._on_store_error = on_store_error
        self._on_worker_exit = on_worker_exit
        self._metrics = metrics
        self._series = metrics.channel(channel.name)
        self._slots = [WorkerSlot(index) for index in range(channel.processes)]
        # Shared with the worker processes, which stop sending while it lies in the future.
        self._cooldown: Synchronized[float] = context.Value("d", 0.0, lock=False)
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._probes = ProbeSchedule(channel.retry.delay)
        self._rate = rate_group
        rate_group.join(self)
        self._pending_writes: set[asyncio.Task[Any]] = set()
        self._log = log.bind(channel=channel.name)

    # -- control ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._active

    def start_dispatcher(self) -> None:
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch_loop(), name=f"dispatcher:{self.channel.name}"
        )

    @property
    def cooldown_until(self) -> float:
        return float(self._cooldown.value)

    def cool_down(self, until: float) -> None:
        self._cooldown.value = max(self._cooldown.value, until)

    def activate(self) -> None:
        """Start the workers (SPEC "activate a channel"); clears a FATAL state."""
        self.fatal_reason = None
        self._active = True
        for slot in self._slots:
            slot.boot_failures = 0
            if slot.process is None:
                self._start(slot)
        self.wake()

    def deactivate(self) -> None:
        """One sentinel per worker: each finishes what it holds, then ends (SPEC
        "deactivate a channel"). Deliveries stay in the Store."""
        self._active = False
        for slot in self._slots:
            slot.cancel_restart()
            if slot.process is not None:
                slot.process.stop()

    def wake(self) -> None:
        self._wake.set()

    def processes(self) -> list[WorkerProcess]:
        return [slot.process for slot in self._slots if slot.process is not None]

    def kill_all(self) -> None:
        for process in self.processes():
            process.kill()

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            # asyncio.wait, not `await` under suppress(CancelledError): that would also swallow
            # a cancel of close() itself.
            await asyncio.wait([self._dispatcher])
        while self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)

    def state(self, paused: bool, stopped: bool) -> ChannelState:
        if self.fatal_reason:
            return ChannelState.FATAL
        # Stopped before paused: a stop outlives the maintenance and must show through it.
        if stopped:
            return ChannelState.STOPPED
        if paused:
            return ChannelState.PAUSED
        if self.misconfigured:
            return ChannelState.MISCONFIGURED
        if any(slot.restart is not None for slot in self._slots):
            return ChannelState.BACKOFF
        if any(p.alive and not p.ready for p in self.processes()):
            return ChannelState.STARTING
        return ChannelState.RUNNING

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p.alive and p.pid is not None]

    # -- dispatching ------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self._dispatch_once()
            except Exception as exc:
                self._on_store_error(exc)
                wait = 1.0
            wait = IDLE_POLL_SECONDS if wait is None else min(wait, IDLE_POLL_SECONDS)
            if wait > 0:
                await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Until woken or `seconds` passed. Not asyncio.wait_for: on Python 3.11 it returns
        normally when the task is cancelled as the event is set (CPython gh-86296), and the
        dispatcher then outlived `close` and held the daemon's stop forever."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _dispatch_once(self) -> float | None:
        """Hand out what may go now. Returns how long to sleep at most (None: until woken)."""
        if not self._active:
            return None
        now = time.time()
        if self.cooldown_until > now:
            return self.cooldown_until - now
        limit = sum(p.free_capacity(self.channel.prefetch) for p in self.processes())
        if self.misconfigured:
            limit = min(limit, self._probe_room())
        if limit == 0:
            return None
        # From the look at the free slots and recipients to the hand-out, one channel of the
        # group at a time: two would each see the same ones free.
        async with self._rate.lock:
            return await self._dispatch_paced(limit)

    async def _dispatch_paced(self, limit: int) -> float | None:
        now = time.time()
        window = self._rate.window
        if window is not None:
            slots = window.available(now)
            if slots == 0:
                free = window.next_free()
                return None if free is None else free - now
            limit = min(limit, slots)
        busy = self._rate.pacer.busy(now)
        claimed = await self.store.claim(
            self.channel.name, limit, now, self.channel.lease, exclude_recipients=busy
        )
        handed = self._hand_out(claimed.deliveries, now)
        if handed == limit:
            return 0.0  # there may be more waiting
        return self._next_wake(claimed.next_due, now)

    def _probe_room(self) -> int:
        # A misconfigured channel sends one delivery, the probe, and waits for its answer.
        return 0 if any(p.in_flight for p in self.processes()) else 1

    def _hand_out(self, deliveries: list[Delivery], now: float) -> int:
        """Give deliveries to the workers with room; what cannot go now goes back."""
        paced: list[Delivery] = []
        sendable: list[Delivery] = []
        seen: set[str] = set()
        for delivery in deliveries:
            if delivery.recipient in seen and self._rate.interval(delivery.recipient) > 0:
                paced.append(delivery)  # the same recipient twice in one claim: pace it
                continue
            seen.add(delivery.recipient)
            sendable.append(delivery)
        offered = [p for p in self.processes() if p.free_capacity(self.channel.prefetch) > 0]
        index = 0
        for position, process in enumerate(offered):
            room = process.free_capacity(self.channel.prefetch)
            share = -(-(len(sendable) - index) // (len(offered) - position))
            batch = sendable[index : index + min(room, share)]
            if batch:
                process.hand(batch)
                index += len(batch)
        unsent = sendable[index:] + paced
        self._rate.started(sendable[:index], now)
        if unsent:
            self._give_back(unsent)
        return index

    def _next_wake(self, next_due: float | None, now: float) -> float | None:
        candidates = []
        free = self._rate.pacer.next_free()
        if free is not None:
            candidates.append(free - now)
        if next_due is not None and next_due > now:
            candidates.append(next_due - now)
        return max(0.0, min(candidates)) if candidates else None

    def _give_back(self, deliveries: list[Delivery]) -> None:
        self._write(self._apply([(_unstarted(d), d) for d in deliveries], None))

    # -- outcomes and process events --------------------------------------------------------

    def on_message(self, process: WorkerProcess, message: ChildMessage) -> None:
        match message:
            case (wire.OUTCOMES, outcomes):
                answered = process.take_outcomes(outcomes)
                self._finished([delivery for _, delivery in answered])
                if answered:
                    self._write(self._apply(answered, process))
            case (wire.LOG, level, event):
                reemit(level, event, channel=self.channel.name, worker_pid=process.pid)
            case (wire.READY, _):
                process.ready = True
                self._log.info("worker.ready", worker=process.spec.index, pid=process.pid)
                self.wake()

    def _finished(self, deliveries: list[Delivery]) -> None:
        self._rate.finished(deliveries, time.time(), self)

    def _write(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    async def _apply(
        self, answered: list[tuple[Outcome, Delivery]], process: WorkerProcess | None
    ) -> None:
        now = time.time()
        outcomes = [outcome for outcome, _ in answered]
        try:
            states = await self.store.complete(outcomes, self.channel.retry, now)
        except Exception as exc:
            # The leases stay in the Store and lapse, so the deliveries are not lost.
            self._on_store_error(exc)
            return
        for (outcome, delivery), state in zip(answered, states, strict=True):
            if state is not None:
                self._after(outcome, delivery, state, process, now)
        self.wake()

    def _after(
        self,
        outcome: Outcome,
        delivery: Delivery,
        state: str,
        process: WorkerProcess | None,
        now: float,
    ) -> None:
        kind = outcome.kind
        if kind is OutcomeKind.UNSTARTED:
            return
        series = self._series
        series.count_state(state)
        fields: dict[str, Any] = {
            "channel": self.channel.name,
            "delivery_id": outcome.id,
            "recipient": delivery.recipient,
            "attempt": delivery.attempt,
            "outcome": kind.value,
            "state": state,
            "duration_ms": round(outcome.duration * 1000, 1),
        }
        if process is not None:
            fields["worker_pid"] = process.pid
        if outcome.error:
            fields["error"] = outcome.error
            self.last_error = outcome.error
        if kind is OutcomeKind.DELIVERED:
            self.misconfigured = None
            self._probes.reset()
            series.observe_latency(now - delivery.created_at)
            attempt_line.write(logging.INFO, fields)
            return
        wait = outcome.retry_after
        if not wait and kind is OutcomeKind.RATE_LIMITED:
            wait = self.channel.retry.delay  # the remote named no time, but said "slow down"
        if wait is not None:
            # A remote's Retry-After holds back the whole channel, not only this delivery; a
            # "slow down" every channel that spends its budget. A plain temporary failure's
            # wait may be about one recipient (SMS.ru's per-number limit) and stays here.
            if kind is OutcomeKind.RATE_LIMITED:
                self._rate.cool_down(now + wait)
            else:
                self.cool_down(now + wait)
            fields["retry_after"] = wait
        if kind is OutcomeKind.MISCONFIGURED:
            self.misconfigured = outcome.error
            # Deliveries sent alongside the one that found the problem answer while the
            # channel already waits: only a probe's answer moves the schedule on.
            if now >= self.cooldown_until:
                self.cool_down(now + self._probes.next_interval())
            fields["retry_in"] = round(self.cooldown_until - now, 3)
            self._log.error("channel.misconfigured", **fields)
            return
        attempt_line.write(
            logging.WARNING if state == DeliveryState.QUEUED else logging.ERROR, fields
        )

    def on_exit(self, process: WorkerProcess) -> None:
        slot = next(s for s in self._slots if s.process is process)
        slot.process = None
        self._on_worker_exit()
        code = process.exitcode
        leftovers = list(process.in_flight.values())
        process.in_flight.clear()
        self._finished(leftovers)
        if leftovers:
            self._write(self._apply(self._orphaned(process, leftovers, code), None))
        if not (process.stopping and code == 0):
            self._metrics.worker_restarts.labels(self.channel.name).inc()
        if process.stopping and code == 0:
            self._log.info("worker.stopped", worker=slot.index, pid=process.pid)
            if self._active:
                self._start(slot)
            return
        ran = time.monotonic() - slot.started_at
        self._log.error(
            "worker.died",
            worker=slot.index,
            pid=process.pid,
            exit_code=code,
            ready=process.ready,
            ran_seconds=round(ran, 2),
        )
        if not self._active:
            return
        if not process.ready:
            self._boot_failed(slot)
            return
        slot.boot_failures = 0
        if ran >= STABLE_SECONDS:
            slot.crash_backoff = CRASH_BACKOFF_FIRST
        self._schedule_restart(slot, slot.crash_backoff)
        slot.crash_backoff = min(slot.crash_backoff * 2, CRASH_BACKOFF_MAX)

    def _orphaned(
        self, process: WorkerProcess, deliveries: list[Delivery], code: int | None
    ) -> list[tuple[Outcome, Delivery]]:
        """Outcomes for what a dead process held: the one it was sending counts as an attempt
        that crashed (so a message that kills its worker ends DEAD); the rest were never
        started."""
        current = process.current_delivery()
        interrupted = process.stopping and not self._active
        answered = []
        for delivery in deliveries:
            if delivery.id == current and not interrupted:
                error = f"the worker process died (exit code {code}) while sending"
                crashed = Outcome(
                    delivery.id, delivery.lease_token, OutcomeKind.CRASHED, error=error
                )
                answered.append((crashed, delivery))
            else:
                answered.append((_unstarted(delivery), delivery))
        return answered

    def _boot_failed(self, slot: WorkerSlot) -> None:
        slot.boot_failures += 1
        if slot.boot_failures >= BOOT_RETRIES:
            self.fatal_reason = (
                f"worker {slot.index} failed to start {slot.boot_failures} times in a row"
            )
            self._log.critical(
                "channel.fatal",
                reason=self.fatal_reason,
                hint=f"fix the cause logged above, then run: notifierctl start {self.channel.name}",
            )
            self.deactivate()
            return
        self._schedule_restart(slot, BOOT_BACKOFF[slot.boot_failures - 1])

    def _schedule_restart(self, slot: WorkerSlot, delay: float) -> None:
        slot.cancel_restart()

        def restart() -> None:
            slot.restart = None
            if self._active and slot.process is None:
                self._start(slot)

        slot.restart = asyncio.get_running_loop().call_later(delay, restart)

    def _start(self, slot: WorkerSlot) -> None:
        spec = ChildSpec(
            channel=self.channel.name,
            index=slot.index,
            worker_type=self.channel.worker_type,
            params=self.channel.params,
            log_level=self._log_level,
        )
        process = WorkerProcess(self._context, spec, self._cooldown, self.on_message, self.on_exit)
        slot.process = process
        slot.started_at = time.monotonic()
        process.start()
        self._log.debug("worker.started", worker=slot.index, pid=process.pid)

    def kill_holder(self, delivery_id: int) -> None:
        """A lease lapsed: if a process is still sending that delivery, it hangs. Kill it (it is
        restarted); the late answer would be ignored anyway."""
        for process in self.processes():
            if delivery_id in process.in_flight:
                self._finished([process.in_flight.pop(delivery_id)])
                if process.current_delivery() == delivery_id:
                    self._log.error(
                        "worker.hung",
                        pid=process.pid,
                        delivery_id=delivery_id,
                        lease_seconds=self.channel.lease,
                    )
                    process.kill()


def _unstarted(delivery: Delivery) -> Outcome:
    return Outcome(delivery.id, delivery.lease_token, OutcomeKind.UNSTARTED)
