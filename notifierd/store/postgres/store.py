"""The PostgreSQL backend of the Store (DESIGN §3, §9): several notifierd hosts on one queue.

Sessions come from a pool (`driver.py` sets each up for a queue); a write is one short
transaction, most of them one statement. New jobs are group-committed (`intake.py`); claims
take rows with SKIP LOCKED (`claims.py`); outcomes are fenced by the lease token
(`outcomes.py`); counts come from a tally kept by triggers (`tally.py`); other hosts are woken
by a coalesced NOTIFY after the commit (`wakeups.py`). Times are the database's clock
(`now()`, `clock.py`): callers pass `store.now()` wherever the interface takes a `now`.

Any failure of the database (down, unreachable, restarted) is a StoreError naming its URL
without the password; while it does not answer, operations fail at once and a probe looks for
it with backoff (`sessions.py`); the pool opens new sessions once it is back, so the Store
resumes by itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import structlog

from notifierd.errors import StoreError
from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store.base import (
    DEFAULT_DEAD_AFTER,
    KEEP,
    ChannelStateRecord,
    ClaimResult,
    DeliveryRecord,
    JobRecord,
    JobSummary,
    Keep,
    Lapsed,
    NewJob,
    NodeRecord,
    RateKeyLease,
    Retried,
    Store,
    StoreCounts,
    new_owner,
)
from notifierd.store.factory import url_without_password
from notifierd.store.postgres import claims, journal, nodes, operator, rate_keys, switches, tally
from notifierd.store.postgres import outcomes as outcome_sql
from notifierd.store.postgres.clock import DatabaseClock
from notifierd.store.postgres.driver import connect, require_driver
from notifierd.store.postgres.intake import Intake
from notifierd.store.postgres.liveness import Liveness
from notifierd.store.postgres.schema import SCHEMA_VERSION, migrate
from notifierd.store.postgres.sessions import Sessions
from notifierd.store.postgres.wakeups import Wakeups

log = structlog.get_logger("notifierd.store")

T = TypeVar("T")
DEFAULT_POOL_SIZE = 10
EXPIRE_BATCH = 5000

EXPIRE = """
WITH picked AS (
    SELECT id FROM deliveries WHERE state = 'queued' AND expires_at <= $1
     LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
   SET state = 'expired', updated_at = $1,
       last_error = COALESCE(d.last_error, 'time-to-live passed before delivery')
  FROM picked WHERE d.id = picked.id
RETURNING d.channel
"""

HAS_PENDING = """
SELECT EXISTS (SELECT 1 FROM deliveries WHERE state = 'queued' AND channel = $1)
    OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'leased' AND channel = $1)
"""


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        *,
        owner: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        dead_after: float = DEFAULT_DEAD_AFTER,
    ) -> None:
        require_driver()
        super().__init__(owner)
        self.url = url
        self._sessions = Sessions(url, pool_size)
        self._clock = DatabaseClock()
        self._random = random.Random()
        self._intake = Intake(url, self._sessions.acquire, self._committed)
        self._wakeups = Wakeups(url, lambda: self.owner, self._sessions.acquire, self._wake)
        self._liveness = Liveness(
            run=self._run,
            clock=self._clock,
            dead_after=dead_after,
            get_owner=lambda: self.owner,
            set_owner=self._set_owner,
            new_owner=new_owner,
            requeued=self._committed,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r}, owner={self.owner!r})"

    @property
    def location(self) -> str:
        return url_without_password(self.url)

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        conn = await connect(self.url)
        try:
            await migrate(conn, self.url)
            await self._clock.sync(conn)
        finally:
            await conn.close()
        await self._sessions.open()
        try:
            await self._liveness.start()
        except BaseException:
            await self._sessions.close()
            raise
        await self._wakeups.start()

    async def close(self) -> None:
        await self._intake.drain()
        if self._sessions.is_open:
            await self._liveness.stop()
        await self._wakeups.stop()
        await self._sessions.close()

    def now(self) -> float:
        """The database's clock (see `clock.py`)."""
        return self._clock.now()

    def unreachable(self) -> str | None:
        return self._sessions.unreachable()

    def fence_deadline(self) -> float:
        """The monotonic time until which this host may start a send (`liveness.py`)."""
        return self._liveness.fence_deadline

    def _set_owner(self, owner: str) -> None:
        self.owner = owner

    def _committed(self, channels: set[str]) -> None:
        self._wakeups.committed(channels)

    async def _run(
        self,
        doing: str,
        operation: Callable[[Any], Awaitable[T]],
        *,
        transaction: bool = False,
        **options: Any,
    ) -> T:
        """`operation(conn)` on a pooled session (`sessions.py`)."""
        return await self._sessions.run(doing, operation, transaction=transaction, **options)

    # -- operations -------------------------------------------------------------------------

    async def recover(self, now: float, owner: str | None = None) -> int:
        """Leases of `owner` back to queued; None: of every owner that is not alive (no
        heartbeat within `dead_after`), and this Store's own (from an earlier run). The
        attempts stay counted; the requeue time is the database's."""
        dead_after = self._liveness.dead_after
        channels = await self._run(
            "recover the leases in",
            lambda conn: nodes.recover(conn, owner, dead_after, self.owner),
        )
        if channels:
            self._committed(set(channels))
        return len(channels)

    async def add(self, job: NewJob, now: float) -> int:
        if not self._sessions.is_open:
            raise StoreError("the store is closed")
        return await self._sessions.guarded(lambda: self._intake.add(job, now))

    async def claim(
        self,
        channel: str,
        limit: int,
        now: float,
        lease_seconds: float,
        exclude_recipients: Collection[str] = (),
    ) -> ClaimResult:
        async def run(conn: Any) -> ClaimResult:
            return await claims.claim(
                conn,
                channel=channel,
                limit=limit,
                now=now,
                lease_seconds=lease_seconds,
                exclude_recipients=exclude_recipients,
                owner=self.owner,
                fresh_within=self._liveness.dead_after / 2,
            )

        return await self._run("claim from", run)

    async def complete(
        self, outcomes: Sequence[Outcome], policy: RetryPolicy, now: float
    ) -> list[str | None]:
        if not outcomes:
            return []
        if all(o.kind == OutcomeKind.DELIVERED for o in outcomes):

            async def delivered(conn: Any) -> list[str | None]:
                return await outcome_sql.complete_delivered(conn, outcomes, now)

            return await self._run("write outcomes to", delivered)
        # The jitter of a retry's delay: drawn only for what may be retried.
        draw = self._random.uniform
        spreads = [0.0 if o.kind == OutcomeKind.DELIVERED else draw(-1, 1) for o in outcomes]

        async def run(conn: Any) -> list[str | None]:
            return await outcome_sql.complete(conn, outcomes, policy, now, spreads)

        return await self._run("write outcomes to", run, transaction=True)

    async def expire(self, now: float) -> dict[str, int]:
        expired: dict[str, int] = {}
        while True:
            rows = await self._run(
                "expire deliveries in", lambda conn: conn.fetch(EXPIRE, now, EXPIRE_BATCH)
            )
            for row in rows:
                expired[row[0]] = expired.get(row[0], 0) + 1
            if len(rows) < EXPIRE_BATCH:
                break
        # Housekeeping runs this every second: the tally's changes are folded at the pace.
        await self._run("count deliveries in", tally.rollup, transaction=True)
        return expired

    async def lapse_leases(self, now: float, policies: Mapping[str, RetryPolicy]) -> list[Lapsed]:
        draw = self._random.uniform
        lapsed: list[Lapsed] = []
        while True:
            batch = await self._run(
                "lapse leases in",
                lambda conn: outcome_sql.lapse(conn, now, policies, lambda: draw(-1, 1)),
                transaction=True,
            )
            lapsed.extend(batch)
            if len(batch) < outcome_sql.LAPSE_BATCH:
                return lapsed

    async def counts(self, now: float) -> dict[str, StoreCounts]:
        await self._run("count deliveries in", tally.rollup, transaction=True)
        return await self._run(
            "count deliveries in",
            lambda conn: tally.read(conn, now),
            transaction=True,
            isolation="repeatable_read",
            readonly=True,
        )

    async def has_pending(self, channel: str) -> bool:
        """SPEC "has jobs": a delivery of the channel queued or leased, not finished."""
        found = await self._run("read", lambda conn: conn.fetchval(HAS_PENDING, channel))
        return bool(found)

    async def list_deliveries(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[DeliveryRecord]:
        return await self._run(
            "read", lambda conn: journal.list_deliveries(conn, channel, state, limit)
        )

    async def requeue(
        self,
        now: float,
        ids: Collection[int] = (),
        channel: str | None = None,
        state: str | None = None,
        ttl_for: Mapping[str, float] | None = None,
    ) -> int:
        id_list = list(ids) if ids else None
        channels: set[str] = set()
        total = 0
        while True:
            requeued = await self._run(
                "requeue deliveries in",
                lambda conn: operator.requeue_batch(
                    conn, now, ids=id_list, channel=channel, state=state, ttl_for=ttl_for or {}
                ),
            )
            channels.update(requeued)
            total += len(requeued)
            if len(requeued) < operator.REQUEUE_BATCH:
                break
        if channels:
            self._committed(channels)
        return total

    async def requeue_each(
        self, now: float, ids: Sequence[int], *, by_job: bool, ttl_for: Mapping[str, float]
    ) -> dict[int, Retried | None]:
        done, channels = await self._run(
            "requeue deliveries in",
            lambda conn: operator.requeue_each(conn, now, ids, by_job=by_job, ttl_for=ttl_for),
            transaction=True,
        )
        if channels:
            self._committed(channels)
        return done

    async def list_jobs(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[JobSummary]:
        return await self._run("read", lambda conn: journal.list_jobs(conn, channel, state, limit))

    async def prune(self, before: float, limit: int) -> int:
        return await self._run(
            "prune", lambda conn: operator.prune(conn, before, limit), transaction=True
        )

    async def get_job(self, job_id: int) -> JobRecord | None:
        return await self._run("read", lambda conn: journal.get_job(conn, job_id))

    async def get_flags(self) -> dict[str, str]:
        return await self._run("read", switches.get_flags)

    async def set_flag(self, name: str, value: str | None) -> None:
        await self._run(
            "set a flag in",
            lambda conn: switches.set_flag(conn, name, value),
            transaction=True,
        )

    async def flags_version(self) -> int:
        return await self._run("read", switches.flags_version)

    async def set_channel_state(
        self,
        channel: str,
        *,
        cooldown_until: float | Keep | None = KEEP,
        misconfigured: str | Keep | None = KEEP,
    ) -> None:
        await self._run(
            "set a channel's state in",
            lambda conn: switches.set_channel_state(conn, channel, cooldown_until, misconfigured),
            transaction=True,
        )

    async def channel_states(self) -> dict[str, ChannelStateRecord]:
        return await self._run("read", switches.channel_states)

    async def acquire_rate_key(self, key: str, lease_seconds: float) -> RateKeyLease | None:
        return await self._run(
            "take a rate key in",
            lambda conn: rate_keys.acquire(conn, key, self.owner, lease_seconds),
        )

    async def renew_rate_key(
        self, key: str, epoch: int, checkpoint: str, lease_seconds: float
    ) -> bool:
        return await self._run(
            "renew a rate key in",
            lambda conn: rate_keys.renew(
                conn, key, self.owner, epoch, checkpoint=checkpoint, lease_seconds=lease_seconds
            ),
        )

    async def release_rate_key(self, key: str, epoch: int, checkpoint: str) -> None:
        await self._run(
            "release a rate key in",
            lambda conn: rate_keys.release(conn, key, self.owner, epoch, checkpoint),
        )

    # -- the hosts --------------------------------------------------------------------------

    async def nodes(self) -> list[NodeRecord]:
        return await self._run("read", nodes.list_nodes)

    async def set_draining(self, draining: bool) -> None:
        await self._run(
            "set draining in", lambda conn: nodes.set_draining(conn, self.owner, draining)
        )
        self._liveness.draining = draining

    async def publish(self, runtime: Mapping[str, Any]) -> None:
        text = json.dumps(dict(runtime))
        await self._run("publish to", lambda conn: nodes.publish(conn, self.owner, text))
        self._liveness.runtime = text

    async def lead(self, seconds: float) -> bool:
        fresh_within = self._liveness.dead_after / 2

        async def run(conn: Any) -> bool:
            return await nodes.lead(conn, self.owner, seconds, fresh_within)

        return await self._run("take the lead in", run)
