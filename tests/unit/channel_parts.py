"""One channel's parts (pool, condition, outcome handler, dispatcher) assembled as the runner
does, on the SQLite Store, with fake worker processes: what the unit tests of the dispatcher
and the outcome handler drive."""

from __future__ import annotations

import multiprocessing
import time

from notifierd.channels.condition import ChannelCondition
from notifierd.channels.dispatcher import Dispatcher
from notifierd.channels.outcomes import OutcomeHandler
from notifierd.channels.pool import WorkerPool
from notifierd.channels.rate_groups import RateGroup, rate_groups
from notifierd.config import Channel
from notifierd.messages import Delivery
from notifierd.metrics import ChannelSeries, Metrics
from notifierd.store import DeliveryRecord, NewJob, Store
from tests.unit.fake_processes import FakeSpawner, FakeWorker


class FakeMember:
    """A channel as its rate group sees it."""

    def __init__(self) -> None:
        self.cooled_until = 0.0
        self.woken = 0

    def cool_down(self, until: float) -> None:
        self.cooled_until = max(self.cooled_until, until)

    def wake(self) -> None:
        self.woken += 1


class ChannelParts:
    def __init__(self, channel: Channel, store: Store, rate_group: RateGroup | None = None) -> None:
        self.channel = channel
        self.store = store
        self.store_errors: list[Exception] = []
        self.spawner = FakeSpawner()
        self.pool = WorkerPool(channel.name, channel.processes, self.spawner)
        cooldown = multiprocessing.get_context("spawn").Value("d", 0.0, lock=False)
        self.condition = ChannelCondition(
            channel.name,
            store,
            cooldown,
            channel.retry.delay,
            on_store_error=self.store_errors.append,
        )
        self.rate = rate_group or rate_groups([channel])[channel.name]
        self.member = FakeMember()
        self.rate.join(self.member)
        self.series: ChannelSeries = Metrics([channel.name]).channel(channel.name)
        self.outcomes = OutcomeHandler(
            channel,
            store,
            condition=self.condition,
            rate_group=self.rate,
            member=self.member,
            series=self.series,
            on_store_error=self.store_errors.append,
        )
        self.dispatcher = Dispatcher(
            channel,
            store,
            pool=self.pool,
            condition=self.condition,
            rate_group=self.rate,
            outcomes=self.outcomes,
            on_store_error=self.store_errors.append,
        )

    @property
    def workers(self) -> list[FakeWorker]:
        return self.spawner.made

    def start_workers(self) -> list[FakeWorker]:
        """Activate the pool and have every process say it is ready."""
        self.pool.activate()
        for worker in self.workers:
            self.pool.ready(worker)
        return self.workers

    async def add(self, message: str = "hello", delay: float = 0.0) -> int:
        job = NewJob(self.channel.name, message, self.channel.recipients, delay, 3600)
        return await self.store.add(job, time.time())

    async def claim(self, limit: int = 10) -> list[Delivery]:
        now = time.time()
        claimed = await self.store.claim(self.channel.name, limit, now, self.channel.lease)
        return claimed.deliveries

    async def record(self, delivery_id: int) -> DeliveryRecord:
        rows = await self.store.list_deliveries(self.channel.name, None, 1000)
        return next(row for row in rows if row.id == delivery_id)

    async def misconfigured(self, error: str) -> None:
        """The channel misconfigured as the Store tells it (with no cool-down)."""
        await self.store.set_channel_state(self.channel.name, misconfigured=error)
        await self.condition.restore()

    async def states(self) -> list[str]:
        rows = await self.store.list_deliveries(self.channel.name, None, 1000)
        return sorted(row.state for row in rows)
