"""The dispatcher of one channel: claims due deliveries from the Store as the channel's workers
have room, paces them (the channel's rate, an interval per recipient, a Retry-After cool-down:
shared with the channels that spend the same remote budget, see `rate_groups`) and hands them
out in batches. It sleeps until woken (a new job, an outcome, a worker ready) or until the
next delivery or free slot is due."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Generic

import structlog

from notifierd.channels.condition import ChannelCondition
from notifierd.channels.outcomes import OutcomeHandler
from notifierd.channels.pool import H, WorkerPool
from notifierd.channels.rate_groups import RateGroup
from notifierd.config import Channel
from notifierd.errors import StoreError
from notifierd.messages import Delivery
from notifierd.processes.wire import monotonic_offset
from notifierd.store import Store

log = structlog.get_logger("notifierd.channel")

IDLE_POLL_SECONDS = 5.0  # a safety net: the dispatcher is woken by events, not by polling
ERROR_PAUSE_SECONDS = 1.0  # after a failed round, before the next


class Dispatcher(Generic[H]):
    """Hands out one channel's deliveries to its worker pool; `wake` it when there may be
    something to do."""

    def __init__(
        self,
        channel: Channel,
        store: Store,
        *,
        pool: WorkerPool[H],
        condition: ChannelCondition,
        rate_group: RateGroup,
        outcomes: OutcomeHandler,
        on_store_error: Callable[[Exception], None],
    ) -> None:
        self._channel = channel
        self._store = store
        self._pool = pool
        self._condition = condition
        self._rate = rate_group
        self._outcomes = outcomes
        self._on_store_error = on_store_error
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"dispatcher:{self._channel.name}"
        )

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait, not `await` under suppress(CancelledError): that would also swallow
            # a cancel of close() itself.
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        await self._condition.restore()
        while True:
            self._wake.clear()
            try:
                wait = await self.dispatch_once()
            except StoreError as exc:
                self._on_store_error(exc)
                wait = ERROR_PAUSE_SECONDS
            except Exception:
                # A fault of the dispatcher itself, not of the Store: with its traceback.
                log.exception("dispatcher.failed", channel=self._channel.name)
                wait = ERROR_PAUSE_SECONDS
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

    async def dispatch_once(self) -> float | None:
        """Hand out what may go now. Returns how long to sleep at most (None: until woken)."""
        if not self._pool.active:
            return None
        if self._rate.lease is not None and not self._rate.lease.held:
            return None  # another host dispatches the key; its lease wakes this one
        cooling = self._condition.cooling()
        if cooling > 0:
            return cooling
        limit = sum(room for _, room in self._pool.rooms(self._channel.prefetch))
        if self._condition.misconfigured:
            limit = min(limit, self._probe_room())
        if limit == 0:
            return None
        # From the look at the free slots and recipients to the hand-out, one channel of the
        # group at a time: two would each see the same ones free.
        async with self._rate.lock:
            return await self._dispatch_paced(limit)

    async def _dispatch_paced(self, limit: int) -> float | None:
        now = self._store.now()
        offset = monotonic_offset(now, time.monotonic())
        window = self._rate.window
        if window is not None:
            slots = window.available(now)
            if slots == 0:
                free = window.next_free()
                return None if free is None else free - now
            limit = min(limit, slots)
        busy = self._rate.pacer.busy(now)
        # On the Store's clock; read before the claim: a heartbeat that lands while the claim
        # runs does not vouch for it.
        fence = self._store.fence_deadline() - offset
        claimed = await self._store.claim(
            self._channel.name, limit, now, self._channel.lease, exclude_recipients=busy
        )
        if self._rate.lease is not None and not self._rate.lease.held:
            # The key went to another host while the claim was awaited: send none of it.
            self._outcomes.give_back(claimed.deliveries)
            return None
        handed = self._hand_out(_fenced(claimed.deliveries, fence), now, offset)
        if handed == limit:
            return 0.0  # there may be more waiting
        return self._next_wake(claimed.next_due, now)

    def _probe_room(self) -> int:
        # A misconfigured channel sends one delivery, the probe, and waits for its answer.
        return 0 if any(p.in_flight for p in self._pool.processes()) else 1

    def _hand_out(self, deliveries: list[Delivery], now: float, offset: float) -> int:
        """Give deliveries to the workers with room; what cannot go now goes back. `offset`
        turns their lease ends and expiries into the workers' monotonic deadlines."""
        paced: list[Delivery] = []
        sendable: list[Delivery] = []
        seen: set[str] = set()
        for delivery in deliveries:
            if delivery.recipient in seen and self._rate.interval(delivery.recipient) > 0:
                paced.append(delivery)  # the same recipient twice in one claim: pace it
                continue
            seen.add(delivery.recipient)
            sendable.append(delivery)
        # Asked again: while the claim was awaited, a process may have died or become ready.
        offered = self._pool.rooms(self._channel.prefetch)
        index = 0
        for position, (process, room) in enumerate(offered):
            share = -(-(len(sendable) - index) // (len(offered) - position))
            batch = sendable[index : index + min(room, share)]
            if batch:
                process.hand(batch, offset)
                index += len(batch)
        unsent = sendable[index:] + paced
        self._rate.started(sendable[:index], now)
        if unsent:
            self._outcomes.give_back(unsent)
        return index

    def _next_wake(self, next_due: float | None, now: float) -> float | None:
        candidates = []
        free = self._rate.pacer.next_free()
        if free is not None:
            candidates.append(free - now)
        if next_due is not None and next_due > now:
            candidates.append(next_due - now)
        return max(0.0, min(candidates)) if candidates else None


def _fenced(deliveries: list[Delivery], fence: float) -> list[Delivery]:
    """The deliveries with the lease's end as a worker must see it: past the Store's fence
    (a shared Store's other hosts may then declare this one dead and hand its leases out
    again), what it holds is no longer its own to start, however long the lease."""
    return [d if d.leased_until <= fence else d._replace(leased_until=fence) for d in deliveries]
