"""The daemon's background work, and the watch over it.

- expiry: each second, queued deliveries past their time-to-live end EXPIRED, and leases a
  hung worker holds past their end are handed out again (DESIGN §2);
- pruning: finished deliveries older than the retention leave the journal, a small batch at a
  time;

  both only while this host holds the Store's housekeeping lease (`Store.lead`, renewed each
  second), so that hosts sharing a Store do not do the same work N times, nor count each
  expiry and lapse N times (DESIGN §9; SQLite: the one host always holds it);
- switches: each second, whether the Store's flags changed under the daemon (another writer
  paused, resumed, stopped or started a channel) and if so the change is applied
  (`Maintenance.refresh`);
- watchdog: systemd's keep-alive, sent from the event loop itself.

Each runs as a named task under `BackgroundTasks`: a task that ends while the daemon runs (it
raised, or returned) is logged with its name and stops the daemon with a non-zero exit, rather
than leaving it up with, say, nothing expiring any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

import structlog

from notifierd.errors import StorageLost, StoreError, StoreUnreachable
from notifierd.metrics import Metrics
from notifierd.retry import RetryPolicy
from notifierd.states import DeliveryState
from notifierd.store import Store
from notifierd.systemd import Notifier

log = structlog.get_logger("notifierd")

EXPIRY_SECONDS = 1.0
SWITCHES_SECONDS = 1.0  # how soon a switch set elsewhere is followed here
PRUNE_BATCH = 1000
PRUNE_PAUSE = 0.05  # between full batches: let the writer serve intake
PRUNE_IDLE_SECONDS = 60.0
#: How long a host holds the housekeeping lease without renewing it: how long the others wait
#: when it dies without a word (one that stops, or is declared dead, lets it go at once).
LEAD_SECONDS = 5.0


class BackgroundTasks:
    """Named tasks that run as long as the daemon does. `on_death(name)` is called when one
    ends on its own; `close` cancels them all."""

    def __init__(self, on_death: Callable[[str], None]) -> None:
        self._on_death = on_death
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def start(self, name: str, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._closing:
            return
        name = task.get_name()
        if task.cancelled():
            log.critical("notifierd.task_died", task=name, error="cancelled")
        elif (exc := task.exception()) is not None:
            error = str(exc) or type(exc).__name__
            log.critical("notifierd.task_died", task=name, error=error, exc_info=exc)
        else:
            log.critical("notifierd.task_died", task=name, error="returned")
        self._on_death(name)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Switches(Protocol):
    """The switches that follow the Store's flags (`maintenance.Maintenance`)."""

    async def refresh(self) -> bool: ...


class Lapses(Protocol):
    """Who hands out again what a lapsed lease held (the channel registry)."""

    def release(self, name: str, delivery_id: int) -> None: ...


class Leadership:
    """Whether this host runs the housekeeping now; the log says when that changes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.leading = False

    async def holds(self) -> bool:
        """Take or renew the lease: True while this host holds it."""
        leading = await self._store.lead(LEAD_SECONDS)
        if leading != self.leading:
            self.leading = leading
            event = "housekeeping.leading" if leading else "housekeeping.left_to_another_host"
            log.info(event, node_id=self._store.owner)
        return leading


class Housekeeping:
    """Expiry, lease lapse and pruning over `store`, on the host that leads; each loop is one
    background task."""

    def __init__(
        self,
        store: Store,
        channels: Lapses,
        metrics: Metrics,
        policies: Mapping[str, RetryPolicy],
        retention: float,
    ) -> None:
        self._store = store
        self._channels = channels
        self._metrics = metrics
        self._policies = policies
        self._retention = retention
        self.leadership = Leadership(store)

    async def expire(self) -> None:
        """Expire what outlived its TTL, hand out again what a hung worker holds."""
        while True:
            await asyncio.sleep(EXPIRY_SECONDS)
            try:
                if not await self.leadership.holds():
                    continue
                now = self._store.now()
                expired = await self._store.expire(now)
                lapsed = await self._store.lapse_leases(now, self._policies)
            except StoreError as exc:
                store_failed(exc)
                continue
            for channel, count in expired.items():
                self._metrics.count_state(channel, DeliveryState.EXPIRED, count)
                log.info("deliveries.expired", channel=channel, count=count)
            for item in lapsed:
                self._channels.release(item.channel, item.id)
                self._metrics.count_state(item.channel, item.state)
                log.warning(
                    "delivery.lease_lapsed",
                    channel=item.channel,
                    delivery_id=item.id,
                    state=item.state,
                )

    async def prune(self) -> None:
        """Delete finished deliveries older than the retention, a small batch at a time so
        that intake never waits long behind it."""
        while True:
            pruned = 0
            try:
                if await self.leadership.holds():
                    before = self._store.now() - self._retention
                    pruned = await self._store.prune(before, PRUNE_BATCH)
            except StoreError as exc:
                store_failed(exc)
            if pruned:
                log.debug("journal.pruned", deliveries=pruned)
            idle = min(PRUNE_IDLE_SECONDS, self._retention / 4)
            await asyncio.sleep(PRUNE_PAUSE if pruned == PRUNE_BATCH else idle)


async def follow_switches(switches: Switches, seconds: float = SWITCHES_SECONDS) -> None:
    """Apply, within about `seconds`, a switch another writer changed in the Store."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await switches.refresh()
        except StoreError as exc:
            store_failed(exc)


async def watchdog(notifier: Notifier, seconds: float) -> None:
    # Sent from the event loop itself: if the loop stalls, the pings stop and systemd acts.
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(seconds)


def store_failed(exc: StoreError) -> None:
    if isinstance(exc, StorageLost | StoreUnreachable):
        return  # the Store said so once (and how it recovers); not again at every poll
    log.error("store.failed", error=str(exc))
