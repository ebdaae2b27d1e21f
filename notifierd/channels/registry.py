"""The virtual channels at run time: the SPEC's "wrapper" (DESIGN §1).

`register` makes a channel's runner at service initialisation; `activate` starts its workers,
`deactivate` sends each of them the sentinel that ends it after what it holds; `exists` answers
by name; `create_job` puts a job into the channel's queue (the Store), whose wake-up (`wake`,
registered with `Store.on_wake` by the daemon) reaches the channel's dispatcher.
The API and the control commands reach the channels only through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

import structlog

from notifierd.channels.rate_groups import RateGroup, rate_groups
from notifierd.channels.rate_lease import KeyLease
from notifierd.channels.runner import ChannelRunner
from notifierd.config import Channel
from notifierd.errors import StorageLost, StoreError
from notifierd.metrics import Metrics
from notifierd.processes.handle import WorkerProcess, spawn_context
from notifierd.states import ChannelState
from notifierd.store import NewJob, Store

log = structlog.get_logger("notifierd")

KILL_WAIT_SECONDS = 5.0


class Switches(Protocol):
    """The switches a channel's state depends on (`maintenance.Maintenance`)."""

    @property
    def paused(self) -> bool: ...

    def stopped(self, name: str) -> bool: ...


class ChannelRegistry:
    """Every configured channel, by name, with its runner (workers and dispatcher)."""

    def __init__(self, store: Store, metrics: Metrics, *, log_level: str) -> None:
        self._store = store
        self._metrics = metrics
        self._log_level = log_level
        self._context = spawn_context()
        self._channels: dict[str, Channel] = {}
        self._runners: dict[str, ChannelRunner] = {}
        self._leases: list[KeyLease] = []
        self._worker_exited = asyncio.Event()
        self._started = False

    # -- the SPEC's methods ----------------------------------------------------------------

    def register(self, channel: Channel, rate_group: RateGroup) -> None:
        """Make the channel's runner (no process yet) and add it to the collection."""
        self._runners[channel.name] = ChannelRunner(
            channel,
            self._store,
            self._context,
            self._log_level,
            on_store_error=lambda exc: _report(channel.name, exc),
            on_worker_exit=self._worker_exited.set,
            metrics=self._metrics,
            rate_group=rate_group,
        )
        self._channels[channel.name] = channel

    def register_all(self, channels: Mapping[str, Channel]) -> None:
        """`register` each channel, with the rate group it shares (`rate_groups`)."""
        groups = rate_groups(channels.values())
        # A key with a send rate is dispatched by one host at a time; one without (a webhook's
        # endpoint) limits nothing hosts could exceed together: every host dispatches it.
        limited = {id(g): g for g in groups.values() if g.key is not None and g.window}
        for group in limited.values():
            group.lease = KeyLease(self._store, group)
            self._leases.append(group.lease)
        for name, channel in channels.items():
            self.register(channel, groups[name])

    def activate(self, name: str) -> None:
        """Start the channel's workers; clears a FATAL state."""
        self._runners[name].activate()

    def deactivate(self, name: str) -> None:
        """Each worker ends after what it holds; the channel's jobs stay in the Store."""
        self._runners[name].deactivate()

    def exists(self, name: str) -> bool:
        return name in self._channels

    async def create_job(
        self,
        channel: Channel,
        message: str,
        delay: float,
        idempotency: tuple[str, str] | None = None,
    ) -> int:
        """Store a job for `channel` (one delivery per recipient) durably; its id."""
        job = NewJob(channel.name, message, channel.recipients, delay, channel.ttl, idempotency)
        job_id = await self._store.add(job, self._store.now())
        self._metrics.channel(channel.name).accepted += 1
        return job_id

    # -- the rest of the channels' life ----------------------------------------------------

    @property
    def channels(self) -> Mapping[str, Channel]:
        return self._channels

    @property
    def names(self) -> Collection[str]:
        return self._channels.keys()

    def runner(self, name: str) -> ChannelRunner:
        return self._runners[name]

    def clear_fatal(self, name: str) -> None:
        self._runners[name].fatal_reason = None

    def start(self, may_run: Callable[[str], bool]) -> None:
        """Start every channel's dispatcher, and the workers of those that `may_run`."""
        self._started = True
        for lease in self._leases:
            lease.start()
        for name, runner in self._runners.items():
            runner.start_dispatcher()
            if may_run(name):
                runner.activate()

    async def stop(self, grace: float) -> None:
        """Deactivate every channel, wait up to `grace` seconds for the workers to end, kill
        those still alive, then stop the dispatchers. Whatever was not delivered stays queued
        in the Store. Once stopped, a second call does nothing."""
        if not self._started:
            return
        self._started = False
        for runner in self._runners.values():
            runner.deactivate()
        if not await self._workers_exited(grace):
            log.warning(
                "notifierd.killing_workers", count=len(self._alive_processes()), timeout=grace
            )
            self.kill_all()
            await self._workers_exited(KILL_WAIT_SECONDS)
        for runner in self._runners.values():
            await runner.close()
        for lease in self._leases:
            await lease.close()  # after the outcomes: the last checkpoint has them all

    def kill_all(self) -> None:
        for runner in self._runners.values():
            runner.kill_all()

    def wake(self, name: str) -> None:
        """New work for the channel `name` may be due (`Store.on_wake`: this host's commit or,
        with a shared Store, another host's): its dispatcher claims now rather than at its
        next poll. A channel this host does not configure is ignored."""
        runner = self._runners.get(name)
        if runner is not None:
            runner.wake()

    async def refresh(self) -> bool:
        """Follow the cool-downs and misconfigured states another host set in the Store
        (`ChannelCondition.follow`); for `housekeeping.follow_switches`."""
        records = await self._store.channel_states()
        changed = False
        for name, runner in self._runners.items():
            if runner.condition.follow(records.get(name)):
                runner.wake()
                changed = True
        return changed

    def wake_all(self) -> None:
        for runner in self._runners.values():
            runner.wake()

    def release(self, name: str, delivery_id: int) -> None:
        """The delivery's lease lapsed: a worker still sending it hangs and is killed; the
        channel's dispatcher hands the delivery out again."""
        runner = self._runners.get(name)
        if runner is not None:
            runner.kill_holder(delivery_id)
            runner.wake()

    def state(self, name: str, switches: Switches) -> ChannelState:
        return self._runners[name].state(switches.paused, switches.stopped(name))

    def describe(self, name: str, switches: Switches) -> dict[str, Any]:
        """What `notifierctl status` shows of the channel, but for its delivery counts."""
        runner = self._runners[name]
        return {
            "name": name,
            "worker": runner.channel.worker_type,
            "state": self.state(name, switches).value,
            "processes": runner.channel.processes,
            "pids": runner.pids(),
            "last_error": runner.fatal_reason or runner.misconfigured or runner.last_error,
        }

    def states(self, switches: Switches) -> dict[str, str]:
        """Each channel's `ChannelState` value, by name."""
        return {name: self.state(name, switches).value for name in self._runners}

    async def _workers_exited(self, seconds: float) -> bool:
        """Wait until no worker process is alive; False if some still are after `seconds`."""
        deadline = time.monotonic() + seconds
        while self._alive_processes():
            self._worker_exited.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._worker_exited.wait(), remaining)
        return True

    def _alive_processes(self) -> list[WorkerProcess]:
        return [p for r in self._runners.values() for p in r.processes() if p.alive]


def _report(channel: str, exc: Exception) -> None:
    """An error a channel's dispatcher or outcome writer met: the Store's (said once in the
    case of a lost database, with the way to recover), or a bug, with its traceback."""
    if isinstance(exc, StorageLost):
        return
    if isinstance(exc, StoreError):
        log.error("store.failed", channel=channel, error=str(exc))
        return
    log.error("channel.failed", channel=channel, error=str(exc), exc_info=exc)
