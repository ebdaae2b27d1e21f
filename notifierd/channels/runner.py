"""One virtual channel at run time, assembled from its parts: the worker slots (`pool`), the
dispatcher that hands them deliveries (`dispatcher`), the handler of their answers (`outcomes`)
and what those answers say about the channel (`condition`). The runner routes what the worker
processes send to the part it concerns, and tells the rest of the daemon the channel's state.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.context import SpawnContext
from multiprocessing.sharedctypes import Synchronized

import structlog

from notifierd.channels.condition import ChannelCondition
from notifierd.channels.dispatcher import Dispatcher
from notifierd.channels.outcomes import OutcomeHandler
from notifierd.channels.pool import WorkerPool
from notifierd.channels.rate_groups import RateGroup
from notifierd.config import Channel
from notifierd.logs import reemit
from notifierd.metrics import Metrics
from notifierd.processes import wire
from notifierd.processes.child import ChildSpec
from notifierd.processes.handle import WorkerProcess
from notifierd.processes.wire import ChildMessage
from notifierd.states import ChannelState
from notifierd.store import Store

log = structlog.get_logger("notifierd.channel")


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
        self._context = context
        self._log_level = log_level
        self._on_worker_exit = on_worker_exit
        # Shared with the worker processes, which send nothing before it (a monotonic time).
        self._cooldown: Synchronized[float] = context.Value("d", 0.0, lock=False)
        self.condition = ChannelCondition(
            channel.name, store, self._cooldown, channel.retry.delay, on_store_error=on_store_error
        )
        self._pool: WorkerPool[WorkerProcess] = WorkerPool(
            channel.name,
            channel.processes,
            self._spawn,
            on_restart=metrics.worker_restarts.labels(channel.name).inc,
        )
        self._outcomes = OutcomeHandler(
            channel,
            store,
            condition=self.condition,
            rate_group=rate_group,
            member=self,
            series=metrics.channel(channel.name),
            on_store_error=on_store_error,
        )
        self._dispatcher = Dispatcher(
            channel,
            store,
            pool=self._pool,
            condition=self.condition,
            rate_group=rate_group,
            outcomes=self._outcomes,
            on_store_error=on_store_error,
        )
        rate_group.join(self)
        self._log = log.bind(channel=channel.name)

    # -- control ----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._pool.active

    @property
    def fatal_reason(self) -> str | None:
        return self._pool.fatal_reason

    @fatal_reason.setter
    def fatal_reason(self, reason: str | None) -> None:
        self._pool.fatal_reason = reason

    @property
    def misconfigured(self) -> str | None:
        return self.condition.misconfigured

    @property
    def last_error(self) -> str | None:
        return self.condition.last_error

    def cool_down(self, until: float) -> None:
        self.condition.cool_down(until)

    def start_dispatcher(self) -> None:
        self._dispatcher.start()

    def activate(self) -> None:
        """Start the workers (SPEC "activate a channel"); clears a FATAL state."""
        self._pool.activate()
        self.wake()

    def deactivate(self) -> None:
        """One sentinel per worker: each finishes what it holds, then ends (SPEC
        "deactivate a channel"). Deliveries stay in the Store."""
        self._pool.deactivate()

    def wake(self) -> None:
        self._dispatcher.wake()

    def processes(self) -> list[WorkerProcess]:
        return self._pool.processes()

    def kill_all(self) -> None:
        self._pool.kill_all()

    async def close(self) -> None:
        await self._dispatcher.close()
        await self._outcomes.close()
        await self.condition.close()

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
        if self._pool.backing_off:
            return ChannelState.BACKOFF
        if self._pool.starting:
            return ChannelState.STARTING
        return ChannelState.RUNNING

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p.alive and p.pid is not None]

    def kill_holder(self, delivery_id: int) -> None:
        """A lease lapsed: if a process is still sending that delivery, it hangs. Kill it (it is
        restarted); the late answer would be ignored anyway."""
        for process in self.processes():
            if delivery_id in process.in_flight:
                self._outcomes.released([process.in_flight.pop(delivery_id)])
                if process.current_delivery() == delivery_id:
                    self._log.error(
                        "worker.hung",
                        pid=process.pid,
                        delivery_id=delivery_id,
                        lease_seconds=self.channel.lease,
                    )
                    process.kill()

    # -- what the worker processes do -------------------------------------------------------

    def on_message(self, process: WorkerProcess, message: ChildMessage) -> None:
        match message:
            case (wire.OUTCOMES, outcomes):
                self._outcomes.answered(process, outcomes)
            case (wire.LOG, level, event):
                reemit(level, event, channel=self.channel.name, worker_pid=process.pid)
            case (wire.READY, _):
                self._pool.ready(process)
                self.wake()

    def on_exit(self, process: WorkerProcess) -> None:
        interrupted = self._pool.stopped_on_purpose(process)
        self._on_worker_exit()
        self._outcomes.orphaned(process, interrupted=interrupted)
        self._pool.exited(process)

    def _spawn(self, index: int) -> WorkerProcess:
        spec = ChildSpec(
            channel=self.channel.name,
            index=index,
            worker_type=self.channel.worker_type,
            params=self.channel.params,
            log_level=self._log_level,
        )
        return WorkerProcess(self._context, spec, self._cooldown, self.on_message, self.on_exit)
