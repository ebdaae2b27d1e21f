"""The SQLite backend of the Store.

One writer thread owns the write connection. Every write operation waiting at a moment is run
in one transaction (group commit): the cost of the fsync that `synchronous=FULL` makes at each
commit is shared by all of them, and each caller's future resolves only after the COMMIT, so
the HTTP handler answers 204 only for a job that is on disk. Reads for status and listings go
through a second connection on another thread, so a slow scan never stalls intake (WAL lets
them run side by side).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from notifierd.config import RetryPolicy
from notifierd.errors import StoreError
from notifierd.lifecycle import after_outcome
from notifierd.messages import Delivery, Outcome
from notifierd.states import RETRYABLE_STATES, DeliveryState, OutcomeKind
from notifierd.store.base import (
    AttemptRecord,
    ClaimResult,
    DeliveryRecord,
    JobRecord,
    Lapsed,
    NewJob,
    Store,
    StoreCounts,
)

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    due_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token INTEGER,
    leased_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- Claiming reads the first due rows of one channel: O(log n) whatever the backlog.
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (channel, due_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS deliveries_expiry ON deliveries (expires_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS deliveries_lease ON deliveries (leased_until) WHERE state = 'leased';
CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job_id);
-- The journal: finished deliveries are pruned by age (journal_retention).
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (updated_at)
    WHERE state IN ('delivered', 'failed', 'dead', 'expired');
-- One row per attempt made: when it ended, how, how long it took, what the remote said.
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    finished_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    duration REAL NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
CREATE TABLE IF NOT EXISTS flags (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Outcomes that report no attempt: nothing was sent, so the journal records nothing.
NO_ATTEMPT = frozenset({OutcomeKind.UNSTARTED, OutcomeKind.EXPIRED})

# Each operation runs inside a savepoint, so one failing operation does not undo the others
# that share its transaction.
_SAVEPOINT = "SAVEPOINT op"
_RELEASE = "RELEASE op"
_ROLLBACK = "ROLLBACK TO op"


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Operation, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._random = random.Random()

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._write_conn = await loop.run_in_executor(self._writer, self._connect_writer)
            self._read_conn = await loop.run_in_executor(self._reader, self._connect_reader)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        loop = asyncio.get_running_loop()
        if self._write_conn is not None:
            await loop.run_in_executor(self._writer, self._write_conn.close)
            self._write_conn = None
        if self._read_conn is not None:
            await loop.run_in_executor(self._reader, self._read_conn.close)
            self._read_conn = None
        self._writer.shutdown()
        self._reader.shutdown()

    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(SCHEMA)
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA query_only=ON")
        return conn

    # -- group commit -----------------------------------------------------------------------

    def _write(self, operation: Operation) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._write_conn is None:
            future.set_exception(StoreError("the store is closed"))
            return future
        self._pending.append((operation, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await loop.run_in_executor(
                        self._writer, self._run_batch, [operation for operation, _ in batch]
                    )
                except Exception as exc:  # the executor is gone: fail, never leave one hanging
                    results = [(False, StoreError(f"the store cannot write: {exc}"))] * len(batch)
                for (_, future), (ok, value) in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._flusher = None

    def _run_batch(self, operations: list[Operation]) -> list[tuple[bool, Any]]:
        conn = self._write_conn
        if conn is None:
            error = StoreError("the store is closed")
            return [(False, error)] * len(operations)
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for operation in operations:
                conn.execute(_SAVEPOINT)
                try:
                    results.append((True, operation(conn)))
                    conn.execute(_RELEASE)
                except Exception as exc:
                    conn.execute(_ROLLBACK)
                    conn.execute(_RELEASE)
                    results.append((False, _as_store_error(exc)))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreError(f"could not commit to {self.path}: {exc}")
            return [(False, error)] * len(operations)
        return results

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._read_conn
        if conn is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, operation, conn)
        except sqlite3.Error as exc:
            raise StoreError(f"could not read {self.path}: {exc}") from exc

    # -- operations -------------------------------------------------------------------------

    async def recover(self, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE deliveries SET state = 'queued', lease_token = NULL, leased_until = NULL,"
                " updated_at = ? WHERE state = 'leased'",
                (now,),
            )
            return cursor.rowcount

        return int(await self._write(run))

    async def add(self, job: NewJob, now: float) -> int:
        due_at = now + job.delay
        expires_at = now + job.ttl

        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO jobs (channel, message, created_at) VALUES (?, ?, ?)",
                (job.channel, job.message, now),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            conn.executemany(
                "INSERT INTO deliveries (job_id, channel, recipient, state, due_at, expires_at,"
                " created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                [
                    (job_id, job.channel, recipient, due_at, expires_at, now, now)
                    for recipient in job.recipients
                ],
            )
            return job_id

        return int(await self._write(run))

    async def claim(
        self,
        channel: str,
        limit: int,
        now: float,
        lease_seconds: float,
        exclude_recipients: Collection[str] = (),
    ) -> ClaimResult:
        token = secrets.randbits(62)
        excluded = list(exclude_recipients)
        exclusion = f" AND recipient NOT IN ({','.join('?' * len(excluded))})" if excluded else ""

        def run(conn: sqlite3.Connection) -> ClaimResult:
            rows = conn.execute(
                "UPDATE deliveries SET state = 'leased', attempts = attempts + 1,"
                " lease_token = ?, leased_until = ?, updated_at = ?"
                " WHERE id IN (SELECT id FROM deliveries"
                "  WHERE state = 'queued' AND channel = ? AND due_at <= ? AND expires_at > ?"
                f"{exclusion} ORDER BY due_at LIMIT ?)"
                " RETURNING id, job_id, recipient, attempts, due_at, expires_at, created_at",
                (token, now + lease_seconds, now, channel, now, now, *excluded, limit),
            ).fetchall()
            # RETURNING gives rows in no promised order: restore "oldest due first".
            rows.sort(key=lambda row: (row[4], row[0]))
            messages = _messages(conn, {row[1] for row in rows})
            next_due = conn.execute(
                "SELECT MIN(due_at) FROM deliveries WHERE state = 'queued' AND channel = ?",
                (channel,),
            ).fetchone()[0]
            leased_until = now + lease_seconds
            deliveries = [
                Delivery(
                    row[0],
                    token,
                    channel,
                    row[2],
                    messages[row[1]],
                    row[3],
                    row[5],
                    leased_until,
                    row[6],
                )
                for row in rows
            ]
            return ClaimResult(deliveries, next_due)

        result: ClaimResult = await self._write(run)
        return result

    async def complete(
        self, outcomes: Sequence[Outcome], policy: RetryPolicy, now: float
    ) -> list[str | None]:
        spreads = [self._random.uniform(-1, 1) for _ in outcomes]

        def run(conn: sqlite3.Connection) -> list[str | None]:
            return [
                _apply_outcome(conn, outcome, policy, now, spread)
                for outcome, spread in zip(outcomes, spreads, strict=True)
            ]

        result: list[str | None] = await self._write(run)
        return result

    async def expire(self, now: float) -> dict[str, int]:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            expired: dict[str, int] = {}
            for (channel,) in conn.execute(
                "UPDATE deliveries SET state = 'expired', updated_at = ?,"
                " last_error = COALESCE(last_error, 'time-to-live passed before delivery')"
                " WHERE state = 'queued' AND expires_at <= ? RETURNING channel",
                (now, now),
            ):
                expired[channel] = expired.get(channel, 0) + 1
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
                state = _apply_outcome(conn, outcome, policy, now, draw(-1, 1))
                if state is not None:
                    lapsed.append(Lapsed(delivery_id, channel, state))
            return lapsed

        result: list[Lapsed] = await self._write(run)
        return result

    async def counts(self, now: float) -> dict[str, StoreCounts]:
        def run(conn: sqlite3.Connection) -> dict[str, StoreCounts]:
            counts: dict[str, StoreCounts] = {}
            for channel, state, due_later, number, oldest in conn.execute(
                "SELECT channel, state, state = 'queued' AND due_at > ?, COUNT(*), MIN(due_at)"
                " FROM deliveries GROUP BY 1, 2, 3",
                (now,),
            ):
                entry = counts.setdefault(channel, StoreCounts())
                if state == DeliveryState.QUEUED:
                    if due_later:
                        entry.delayed += number
                    else:
                        entry.queued += number
                        entry.oldest_due = oldest
                elif state == DeliveryState.LEASED:
                    entry.in_flight += number
                elif hasattr(entry, state):
                    setattr(entry, state, getattr(entry, state) + number)
            return counts

        return await self._read(run)

    async def list_deliveries(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[DeliveryRecord]:
        clauses, arguments = _filters(channel=channel, state=state)

        def run(conn: sqlite3.Connection) -> list[DeliveryRecord]:
            rows = conn.execute(
                "SELECT id, job_id, channel, recipient, state, attempts, due_at, expires_at,"
                f" created_at, updated_at, last_error FROM deliveries{clauses}"
                " ORDER BY updated_at DESC, id DESC LIMIT ?",
                (*arguments, limit),
            ).fetchall()
            return [DeliveryRecord(*row) for row in rows]

        return await self._read(run)

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
            clauses, arguments = _filters(channel=channel, state=state, ids=id_list)
            rows = conn.execute(
                f"SELECT id, channel FROM deliveries{clauses}"
                f"{' AND' if clauses else ' WHERE'} state IN ({','.join('?' * len(terminal))})",
                (*arguments, *terminal),
            ).fetchall()
            for delivery_id, delivery_channel in rows:
                ttl = (ttl_for or {}).get(delivery_channel, 86400.0)
                conn.execute(
                    "UPDATE deliveries SET state = 'queued', attempts = 0, due_at = ?,"
                    " expires_at = ?, lease_token = NULL, leased_until = NULL, updated_at = ?"
                    " WHERE id = ?",
                    (now, now + ttl, now, delivery_id),
                )
            return len(rows)

        return int(await self._write(run))

    async def prune(self, before: float, limit: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM deliveries WHERE state IN"
                    " ('delivered', 'failed', 'dead', 'expired') AND updated_at < ? LIMIT ?",
                    (before, limit),
                )
            ]
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            jobs = [
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT job_id FROM deliveries WHERE id IN ({marks})", ids
                )
            ]
            conn.execute(f"DELETE FROM attempts WHERE delivery_id IN ({marks})", ids)
            conn.execute(f"DELETE FROM deliveries WHERE id IN ({marks})", ids)
            # A job goes with its last delivery.
            conn.execute(
                f"DELETE FROM jobs WHERE id IN ({','.join('?' * len(jobs))}) AND NOT EXISTS"
                " (SELECT 1 FROM deliveries WHERE deliveries.job_id = jobs.id)",
                jobs,
            )
            return len(ids)

        return int(await self._write(run))

    async def get_job(self, job_id: int) -> JobRecord | None:
        def run(conn: sqlite3.Connection) -> JobRecord | None:
            job = conn.execute(
                "SELECT id, channel, message, created_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if job is None:
                return None
            rows = conn.execute(
                "SELECT id, job_id, channel, recipient, state, attempts, due_at, expires_at,"
                " created_at, updated_at, last_error FROM deliveries WHERE job_id = ?"
                " ORDER BY id",
                (job_id,),
            ).fetchall()
            history: dict[int, list[AttemptRecord]] = {row[0]: [] for row in rows}
            if rows:
                marks = ",".join("?" * len(rows))
                for delivery_id, *attempt in conn.execute(
                    "SELECT delivery_id, attempt, finished_at, outcome, duration, error"
                    f" FROM attempts WHERE delivery_id IN ({marks}) ORDER BY rowid",
                    [row[0] for row in rows],
                ):
                    history[delivery_id].append(AttemptRecord(*attempt))
            return JobRecord(
                id=job[0],
                channel=job[1],
                message=job[2],
                created_at=job[3],
                deliveries=[(DeliveryRecord(*row), history[row[0]]) for row in rows],
            )

        return await self._read(run)

    async def get_flags(self) -> dict[str, str]:
        def run(conn: sqlite3.Connection) -> dict[str, str]:
            return dict(conn.execute("SELECT name, value FROM flags").fetchall())

        return await self._read(run)

    async def set_flag(self, name: str, value: str | None) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if value is None:
                conn.execute("DELETE FROM flags WHERE name = ?", (name,))
            else:
                conn.execute(
                    "INSERT INTO flags (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )

        await self._write(run)


def _messages(conn: sqlite3.Connection, job_ids: set[int]) -> dict[int, str]:
    if not job_ids:
        return {}
    ids = list(job_ids)
    rows = conn.execute(
        f"SELECT id, message FROM jobs WHERE id IN ({','.join('?' * len(ids))})", ids
    ).fetchall()
    return dict(rows)


def _apply_outcome(
    conn: sqlite3.Connection, outcome: Outcome, policy: RetryPolicy, now: float, spread: float
) -> str | None:
    row = conn.execute(
        "SELECT attempts, expires_at FROM deliveries"
        " WHERE id = ? AND state = 'leased' AND lease_token = ?",
        (outcome.id, outcome.lease_token),
    ).fetchone()
    if row is None:
        return None  # a late answer for a lease that is no longer current
    attempts, expires_at = row
    kind = OutcomeKind(outcome.kind)
    if kind not in NO_ATTEMPT:
        conn.execute(
            "INSERT INTO attempts (delivery_id, attempt, finished_at, outcome, duration, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (outcome.id, attempts, now, kind.value, outcome.duration, outcome.error),
        )
    transition = after_outcome(
        kind=kind,
        attempts=attempts,
        expires_at=expires_at,
        error=outcome.error,
        retry_after=outcome.retry_after,
        policy=policy,
        now=now,
        spread=spread,
    )
    conn.execute(
        "UPDATE deliveries SET state = ?, due_at = COALESCE(?, due_at),"
        " attempts = attempts - ?,"
        # Delivered clears the error (the journal's history keeps it); otherwise the newest
        # error is kept, or the last one when the outcome has none.
        " last_error = CASE WHEN ? = 'delivered' THEN NULL ELSE COALESCE(?, last_error) END,"
        " lease_token = NULL, leased_until = NULL, updated_at = ? WHERE id = ?",
        (
            transition.state.value,
            transition.due_at,
            1 if transition.uncount else 0,
            transition.state.value,
            transition.error,
            now,
            outcome.id,
        ),
    )
    return transition.state.value


def _filters(
    *, channel: str | None, state: str | None, ids: Sequence[int] = ()
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    arguments: list[Any] = []
    if channel is not None:
        clauses.append("channel = ?")
        arguments.append(channel)
    if state is not None:
        clauses.append("state = ?")
        arguments.append(state)
    if ids:
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        arguments.extend(ids)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), arguments


def _as_store_error(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return StoreError(str(exc))
    return exc
