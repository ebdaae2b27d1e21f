"""The SQLite backend of the Store: one database file, one writer (the parent), group commit.

This module holds the queries, each an operation run by the write engine (`engine.py`: group
commit, savepoints, the watch on the file) or on the reading connection (`connections.py`).
The database file is guarded (`guard.py`): checked before it is opened, its schema brought up
to date (`schema.migrate`), and watched while the daemon runs.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from notifierd.errors import StoreError
from notifierd.messages import Delivery, Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import RETRYABLE_STATES, OutcomeKind
from notifierd.store.base import (
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
    WakeCallback,
)
from notifierd.store.counts import EXPIRED, LEASED, QUEUED
from notifierd.store.sqlite import journal, switches
from notifierd.store.sqlite.connections import Reader
from notifierd.store.sqlite.engine import GroupCommit
from notifierd.store.sqlite.guard import DatabaseGuard
from notifierd.store.sqlite.jobs import list_jobs, requeue_each, requeue_rows
from notifierd.store.sqlite.node import SingleNode
from notifierd.store.sqlite.outcomes import apply_delivered, apply_outcome
from notifierd.store.sqlite.rate_keys import LocalRateKeys
from notifierd.store.sqlite.schema import SCHEMA_VERSION

T = TypeVar("T")


class SqliteStore(Store):
    """The Store in one SQLite database file, for one daemon at a time (the state lock)."""

    def __init__(self, path: Path, owner: str | None = None) -> None:
        super().__init__(owner)
        self.path = path
        self._guard = DatabaseGuard(path)
        self._engine = GroupCommit(path, self._guard)
        self._reader = Reader(path)
        self._random = random.Random()
        self._rate_keys = LocalRateKeys()
        self._node = SingleNode()

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._node = SingleNode()
        try:
            await self._engine.start()
            await self._reader.open()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc

    async def close(self) -> None:
        await self._engine.stop()
        await self._reader.close()
        self._guard.release()

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def now(self) -> float:
        return time.time()

    def on_wake(self, callback: WakeCallback) -> None:
        super().on_wake(callback)
        self._engine.on_new_work = self._wake

    def _write(self, operation: Callable[[sqlite3.Connection], T]) -> asyncio.Future[Any]:
        """The future of `operation`'s result, once its transaction committed."""
        return self._engine.write(operation)

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        return await self._reader.read(operation)

    # -- deliveries -------------------------------------------------------------------------

    async def recover(self, now: float, owner: str | None = None) -> int:
        # One daemon per database (the state lock): with no owner named, every lease is a
        # dead process's.
        owned, arguments = ("", (now,)) if owner is None else (" AND lease_owner = ?", (now, owner))

        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "UPDATE deliveries SET state = 'queued', lease_token = NULL, leased_until = NULL,"
                f" updated_at = ? WHERE state = 'leased'{owned} RETURNING channel, due_at",
                arguments,
            ).fetchall()
            changes = self._engine.changes
            for channel, due_at in rows:
                changes.move(channel, LEASED, QUEUED)
                changes.queued_until(channel, due_at, now)
                self._engine.woken.add(channel)
            return len(rows)

        return int(await self._write(run))

    async def add(self, job: NewJob, now: float) -> int:
        return int(await self._engine.add(job, now))

    async def claim(
        self,
        channel: str,
        limit: int,
        now: float,
        lease_seconds: float,
        exclude_recipients: Collection[str] = (),
    ) -> ClaimResult:
        if self._node.draining:
            return ClaimResult([], None)
        token = secrets.randbits(62)
        excluded = list(exclude_recipients)
        exclusion = f" AND recipient NOT IN ({','.join('?' * len(excluded))})" if excluded else ""
        leased_until = now + lease_seconds

        def run(conn: sqlite3.Connection) -> ClaimResult:
            rows = conn.execute(
                "UPDATE deliveries SET state = 'leased', attempts = attempts + 1,"
                " lease_token = ?, lease_owner = ?, leased_until = ?, updated_at = ?"
                " WHERE id IN (SELECT id FROM deliveries"
                "  WHERE state = 'queued' AND channel = ? AND due_at <= ? AND expires_at > ?"
                f"{exclusion} ORDER BY due_at LIMIT ?)"
                " RETURNING id, job_id, recipient, attempts, due_at, expires_at, created_at",
                (token, self.owner, leased_until, now, channel, now, now, *excluded, limit),
            ).fetchall()
            # RETURNING gives rows in no promised order: restore "oldest due first".
            rows.sort(key=lambda row: (row[4], row[0]))
            if rows:
                self._engine.changes.move(channel, QUEUED, LEASED, len(rows))
            messages = _messages(conn, {row[1] for row in rows})
            next_due = conn.execute(
                "SELECT MIN(due_at) FROM deliveries WHERE state = 'queued' AND channel = ?",
                (channel,),
            ).fetchone()[0]
            return ClaimResult(_deliveries(rows, token, channel, messages, leased_until), next_due)

        result: ClaimResult = await self._write(run)
        return result

    async def complete(
        self, outcomes: Sequence[Outcome], policy: RetryPolicy, now: float
    ) -> list[str | None]:
        # The jitter of a retry's delay: drawn only for what may be retried.
        draw = self._random.uniform
        spreads = [0.0 if o.kind == OutcomeKind.DELIVERED else draw(-1, 1) for o in outcomes]

        def run(conn: sqlite3.Connection) -> list[str | None]:
            changes = self._engine.changes
            delivered = apply_delivered(conn, outcomes, now, changes)
            return [
                delivered.get(index)
                if outcome.kind == OutcomeKind.DELIVERED
                else apply_outcome(conn, outcome, policy, now, spread, changes=changes)
                for index, (outcome, spread) in enumerate(zip(outcomes, spreads, strict=True))
            ]

        result: list[str | None] = await self._write(run)
        return result

    async def expire(self, now: float) -> dict[str, int]:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            expired: dict[str, int] = {}
            changes = self._engine.changes
            for channel, due_at in conn.execute(
                "UPDATE deliveries SET state = 'expired', updated_at = ?,"
                " last_error = COALESCE(last_error, 'time-to-live passed before delivery')"
                " WHERE state = 'queued' AND expires_at <= ? RETURNING channel, due_at",
                (now, now),
            ):
                expired[channel] = expired.get(channel, 0) + 1
                changes.move(channel, QUEUED, EXPIRED)
                changes.dequeued_early(channel, due_at, now)
            return expired

        result: dict[str, int] = await self._write(run)
        return result

    async def lapse_leases(self, now: float, policies: Mapping[str, RetryPolicy]) -> list[Lapsed]:
        draw = self._random.uniform

        def run(conn: sqlite3.Connection) -> list[Lapsed]:
            rows = conn.execute(
                "SELECT id, channel, lease_token FROM deliveries"
                " WHERE state = 'leased' AND leased_until <= ?",
                (now,),
            ).fetchall()
            lapsed = []
            for delivery_id, channel, token in rows:
                policy = policies.get(channel, RetryPolicy())
                outcome = Outcome(
                    delivery_id,
                    token,
                    OutcomeKind.LAPSED,
                    error="the worker held the delivery past its lease",
                )
                state = apply_outcome(
                    conn, outcome, policy, now, draw(-1, 1), changes=self._engine.changes
                )
                if state is not None:
                    lapsed.append(Lapsed(delivery_id, channel, state))
            return lapsed

        result: list[Lapsed] = await self._write(run)
        return result

    async def has_pending(self, channel: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            # Two lookups, each served by a partial index (deliveries_due, deliveries_lease).
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE channel = ? AND state = 'queued')"
                " OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'leased' AND channel = ?)",
                (channel, channel),
            ).fetchone()
            return bool(row[0])

        return await self._read(run)

    async def counts(self, now: float) -> dict[str, StoreCounts]:
        """From memory (see `store.counts`): no scan of the deliveries."""
        self._require_open()
        return self._engine.counts.snapshot(now)

    # -- the operator's view ----------------------------------------------------------------

    async def list_deliveries(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[DeliveryRecord]:
        return await self._read(lambda conn: journal.list_deliveries(conn, channel, state, limit))

    async def requeue(
        self,
        now: float,
        ids: Collection[int] = (),
        channel: str | None = None,
        state: str | None = None,
        ttl_for: Mapping[str, float] | None = None,
    ) -> int:
        terminal = sorted(RETRYABLE_STATES)
        id_list = list(ids)

        def run(conn: sqlite3.Connection) -> int:
            clauses, arguments = journal.filters(channel=channel, state=state, ids=id_list)
            rows = conn.execute(
                f"SELECT id, channel, state FROM deliveries{clauses}"
                f"{' AND' if clauses else ' WHERE'} state IN ({','.join('?' * len(terminal))})",
                (*arguments, *terminal),
            ).fetchall()
            self._engine.woken.update(row[1] for row in rows)
            return requeue_rows(conn, rows, now, ttl_for or {}, self._engine.changes)

        return int(await self._write(run))

    async def requeue_each(
        self, now: float, ids: Sequence[int], *, by_job: bool, ttl_for: Mapping[str, float]
    ) -> dict[int, Retried | None]:
        def run(conn: sqlite3.Connection) -> dict[int, Retried | None]:
            changes = self._engine.changes
            start = len(changes.moves)
            done = requeue_each(conn, ids, now, by_job=by_job, ttl_for=ttl_for, changes=changes)
            self._engine.woken.update(channel for channel, _, _ in changes.moves[start:])
            return done

        result: dict[int, Retried | None] = await self._write(run)
        return result

    async def list_jobs(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[JobSummary]:
        return await self._read(lambda conn: list_jobs(conn, channel, state, limit))

    async def prune(self, before: float, limit: int) -> int:
        return int(
            await self._write(lambda conn: journal.prune(conn, before, limit, self._engine.changes))
        )

    async def get_job(self, job_id: int) -> JobRecord | None:
        return await self._read(lambda conn: journal.get_job(conn, job_id))

    # -- switches and channel states --------------------------------------------------------

    async def get_flags(self) -> dict[str, str]:
        return await self._read(switches.get_flags)

    async def set_flag(self, name: str, value: str | None) -> None:
        await self._write(lambda conn: switches.set_flag(conn, name, value))

    async def flags_version(self) -> int:
        return await self._read(switches.flags_version)

    async def set_channel_state(
        self,
        channel: str,
        *,
        cooldown_until: float | Keep | None = KEEP,
        misconfigured: str | Keep | None = KEEP,
    ) -> None:
        await self._write(
            lambda conn: switches.set_channel_state(conn, channel, cooldown_until, misconfigured)
        )

    async def channel_states(self) -> dict[str, ChannelStateRecord]:
        return await self._read(switches.channel_states)

    async def acquire_rate_key(self, key: str, lease_seconds: float) -> RateKeyLease | None:
        return self._rate_keys.acquire(key)

    async def renew_rate_key(
        self, key: str, epoch: int, checkpoint: str, lease_seconds: float
    ) -> bool:
        return self._rate_keys.renew(key, epoch, checkpoint)

    async def release_rate_key(self, key: str, epoch: int, checkpoint: str) -> None:
        self._rate_keys.release(key, epoch, checkpoint)

    # -- the one host -----------------------------------------------------------------------

    async def nodes(self) -> list[NodeRecord]:
        counts = await self.counts(self.now())
        leases = sum(c.in_flight for c in counts.values())
        return [self._node.record(self.owner, leases, self._rate_keys.held())]

    async def set_draining(self, draining: bool) -> None:
        self._require_open()
        self._node.draining = draining

    async def publish(self, runtime: Mapping[str, Any]) -> None:
        self._require_open()
        self._node.publish(runtime)

    async def lead(self, seconds: float) -> bool:
        self._require_open()
        return True

    def _require_open(self) -> None:
        if not self._engine.is_open:
            raise StoreError("the store is closed")


def _deliveries(
    rows: list[Any], token: int, channel: str, messages: dict[int, str], leased_until: float
) -> list[Delivery]:
    """The claimed rows (id, job_id, recipient, attempts, due_at, expires_at, created_at) as
    deliveries for the workers."""
    return [
        Delivery(
            row[0], token, channel, row[2], messages[row[1]], row[3], row[5], leased_until, row[6]
        )
        for row in rows
    ]


def _messages(conn: sqlite3.Connection, job_ids: set[int]) -> dict[int, str]:
    if not job_ids:
        return {}
    ids = list(job_ids)
    rows = conn.execute(
        f"SELECT id, message FROM jobs WHERE id IN ({','.join('?' * len(ids))})", ids
    ).fetchall()
    return dict(rows)
