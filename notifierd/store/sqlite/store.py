"""The SQLite backend of the Store.

Group commit: every write waiting at a moment shares one transaction, so the cost of the fsync
that `synchronous=FULL` makes at each commit is shared by all of them, and each caller's future
resolves only after the COMMIT: the HTTP handler answers 204 only for a job that is on disk.

The statements of a transaction run on the event loop's thread (they touch only SQLite's page
cache, a few microseconds each); only the COMMIT, which waits for the disk, runs on the writer
thread. While it waits, the loop goes on and the next writes gather; they run the moment the
COMMIT is done. Running the statements on the writer thread too made each of them wait for the
GIL behind the busy loop, which cost more than the statements themselves.

Jobs added in one transaction are inserted together (one `executemany` for all their rows).
Reads for status and listings go through a second connection on another thread, so a slow scan
never stalls intake (WAL lets them run side by side).

The database file itself is guarded (`guard.py`): checked before it is opened, its schema
brought up to date (`schema.migrate`), and watched while the daemon runs. Once its file
is deleted or replaced, every write fails with `StorageLost`: a commit into a file nobody will
open again must not be answered as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from notifierd.config import RetryPolicy
from notifierd.errors import StorageLost, StoreError
from notifierd.messages import Delivery, Outcome
from notifierd.states import RETRYABLE_STATES, OutcomeKind
from notifierd.store.base import (
    AttemptRecord,
    ClaimResult,
    DeliveryRecord,
    JobRecord,
    JobSummary,
    Lapsed,
    NewJob,
    Retried,
    Store,
    StoreCounts,
)
from notifierd.store.counts import EXPIRED, LEASED, QUEUED, CountChanges, DeliveryCounts
from notifierd.store.sqlite import idempotency
from notifierd.store.sqlite.guard import WATCH_SECONDS, DatabaseGuard
from notifierd.store.sqlite.jobs import list_jobs, requeue_each, requeue_rows
from notifierd.store.sqlite.outcomes import apply_delivered, apply_outcome
from notifierd.store.sqlite.rows import RowsInsert
from notifierd.store.sqlite.schema import FINISHED, SCHEMA_VERSION, migrate

log = structlog.get_logger("notifierd.store")

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]


# Each operation runs inside a savepoint, so one failing operation does not undo the others
# that share its transaction. (The jobs added in a transaction share one.)
_SAVEPOINT = "SAVEPOINT op"
_RELEASE = "RELEASE op"
_ROLLBACK = "ROLLBACK TO op"


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._guard = DatabaseGuard(path)
        #: Set once the database file has left its path: every write fails with it.
        self._lost: StorageLost | None = None
        self._watch: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Operation, asyncio.Future[Any]]] = []
        self._pending_jobs: list[tuple[NewJob, float, asyncio.Future[Any]]] = []
        #: Set while a transaction is being committed (and a batch is scheduled).
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._random = random.Random()
        #: The loop the Store was opened on: looked up once (asyncio's lookup makes a getpid()
        #: system call on Python 3.11, and the hot path would make several per message).
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The id the next job gets: the writer is the only one to insert jobs, so it is known
        #: in advance (None: read it from the table at the next insert).
        self._next_job_id: int | None = None
        self._counts = DeliveryCounts()
        #: The count changes of the transaction being built (see `store.counts`).
        self._changes = CountChanges()

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        try:
            self._write_conn = await loop.run_in_executor(self._writer, self._connect_writer)
            self._read_conn = await loop.run_in_executor(self._reader, self._connect_reader)
            await loop.run_in_executor(self._writer, self._count_all, self._write_conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        self._watch = loop.create_task(self._watch_file())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self._idle.wait()
        loop = asyncio.get_running_loop()
        if self._write_conn is not None:
            await loop.run_in_executor(self._writer, self._write_conn.close)
            self._write_conn = None
        if self._read_conn is not None:
            await loop.run_in_executor(self._reader, self._read_conn.close)
            self._read_conn = None
        self._guard.release()
        self._writer.shutdown()
        self._reader.shutdown()

    def _connect_writer(self) -> sqlite3.Connection:
        self._guard.before_open()
        # Statements run on the loop's thread, the COMMIT on the writer's: never both at once.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            found = migrate(conn)
            self._guard.after_open(conn)
        except BaseException:
            conn.close()
            self._guard.release()
            raise
        if found < SCHEMA_VERSION:
            log.info(
                "store.migrated",
                database=str(self.path),
                from_version=found,
                to_version=SCHEMA_VERSION,
            )
        return conn

    def _count_all(self, conn: sqlite3.Connection) -> None:
        """The one full count: from here on, the counts follow the transitions."""
        now = time.time()
        by_state = conn.execute(
            "SELECT channel, state, COUNT(*) FROM deliveries GROUP BY 1, 2"
        ).fetchall()
        # The cursor itself, not its fetchall(): a million rows as tuples would cost the
        # parent ~150 MB at every start-up with a large backlog.
        due_later = conn.execute(
            "SELECT channel, due_at FROM deliveries WHERE state = 'queued' AND due_at > ?",
            (now,),
        )
        self._counts.reset(by_state, due_later)

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA query_only=ON")
        # A first read opens the WAL, so that reads go on should the files leave their paths
        # (a connection that has not read yet cannot open them then).
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn

    async def _watch_file(self) -> None:
        while self._lost is None:
            await asyncio.sleep(WATCH_SECONDS)
            reason = self._guard.lost()
            if reason is not None:
                self._mark_lost(StorageLost(reason))

    def _mark_lost(self, error: StorageLost) -> None:
        if self._lost is None:
            self._lost = error
            wal = self._guard.set_aside_wal()
            log.error("store.lost", error=str(error), recovery=self._guard.recovery_hint(wal))

    # -- group commit -----------------------------------------------------------------------

    def _write(self, operation: Operation) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._running_loop().create_future()
        if self._write_conn is None or self._lost is not None:
            future.set_exception(self._lost or StoreError("the store is closed"))
            return future
        self._pending.append((operation, future))
        self._schedule()
        return future

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        return asyncio.get_running_loop() if loop is None else loop

    def _schedule(self) -> None:
        if not self._busy:
            # Not at once: let every write of this turn of the loop join the transaction.
            self._busy = True
            self._idle.clear()
            self._running_loop().call_soon(self._begin)

    def _begin(self) -> None:
        """Run the waiting writes in one transaction, then hand its COMMIT to the writer."""
        jobs, self._pending_jobs = self._pending_jobs, []
        batch, self._pending = self._pending, []
        if not jobs and not batch:
            self._busy = False
            self._idle.set()
            return
        futures = [future for _, _, future in jobs] + [future for _, future in batch]
        changes = self._changes = CountChanges()
        conn = self._write_conn
        if conn is None:
            self._settle(futures, None, StoreError("the store is closed"))
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = self._insert_jobs(conn, jobs)
            results += [self._run(conn, operation) for operation, _ in batch]
        except sqlite3.Error as exc:
            self._rollback(conn)
            self._settle(futures, None, StoreError(f"could not write to {self.path}: {exc}"))
            return
        commit = self._running_loop().run_in_executor(self._writer, self._commit, conn)
        commit.add_done_callback(lambda done: self._committed(done, futures, results, changes))

    def _commit(self, conn: sqlite3.Connection) -> None:
        # One stat() per transaction, on the writer's thread: a write after the file left its
        # path is refused at once, not at the watch's next look.
        lost = self._guard.lost()
        if lost is not None:
            self._rollback(conn)
            raise StorageLost(lost)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._rollback(conn)
            raise

    def _committed(
        self,
        commit: asyncio.Future[None],
        futures: list[asyncio.Future[Any]],
        results: list[tuple[bool, Any]],
        changes: CountChanges,
    ) -> None:
        exc = commit.exception()
        error: StoreError | None = None
        if isinstance(exc, StorageLost):
            self._mark_lost(exc)
            error = exc
        elif exc is not None:
            error = StoreError(f"could not commit to {self.path}: {exc}")
        else:
            self._counts.apply(changes)
        self._settle(futures, results, error)

    def _settle(
        self,
        futures: list[asyncio.Future[Any]],
        results: list[tuple[bool, Any]] | None,
        error: Exception | None,
    ) -> None:
        """Resolve the futures of a finished transaction, then start the next one."""
        for index, future in enumerate(futures):
            if future.done():
                continue
            if error is not None or results is None:
                future.set_exception(error or StoreError("the transaction failed"))
            elif results[index][0]:
                future.set_result(results[index][1])
            else:
                future.set_exception(results[index][1])
        self._busy = False
        if self._pending or self._pending_jobs:
            self._schedule()
        else:
            self._idle.set()

    def _run(self, conn: sqlite3.Connection, operation: Operation) -> tuple[bool, Any]:
        conn.execute(_SAVEPOINT)
        mark = self._changes.mark()
        try:
            value = operation(conn)
        except Exception as exc:
            self._changes.undo(mark)
            conn.execute(_ROLLBACK)
            conn.execute(_RELEASE)
            return False, _as_store_error(exc)
        conn.execute(_RELEASE)
        return True, value

    def _insert_jobs(
        self, conn: sqlite3.Connection, jobs: list[tuple[NewJob, float, asyncio.Future[Any]]]
    ) -> list[tuple[bool, Any]]:
        """Insert the jobs of a transaction and their deliveries all at once. Should that
        fail, each job is tried on its own, so that one bad job fails alone. A job whose
        idempotency key is known (stored, or earlier in this transaction) is not inserted."""
        if not jobs:
            return []
        new_jobs = [(job, now) for job, now, _ in jobs]
        if not idempotency.has_keys([job for job, _ in new_jobs]):  # the usual case
            return self._insert_new(conn, new_jobs)
        key_plan = idempotency.plan(conn, [job for job, _ in new_jobs])
        inserted = self._insert_new(conn, [new_jobs[index] for index in key_plan.fresh])
        return idempotency.results(key_plan, [job for job, _ in new_jobs], inserted)

    def _insert_new(
        self, conn: sqlite3.Connection, jobs: list[tuple[NewJob, float]]
    ) -> list[tuple[bool, Any]]:
        if not jobs:
            return []
        conn.execute(_SAVEPOINT)
        try:
            first = self._next_job_id
            if first is None:
                first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs").fetchone()[0]
            numbered = [(first + k, job, now) for k, (job, now) in enumerate(jobs)]
            _INSERT_JOBS.run(conn, [(i, job.channel, job.message, now) for i, job, now in numbered])
            _INSERT_DELIVERIES.run(
                conn, [row for i, job, now in numbered for row in _delivery_rows(i, job, now)]
            )
            keys = [row for i, job, _ in numbered for row in idempotency.key_rows(i, job)]
            if keys:
                idempotency.INSERT_KEYS.run(conn, keys)
        except sqlite3.Error:
            conn.execute(_ROLLBACK)
            conn.execute(_RELEASE)
            self._next_job_id = None
            return [self._run(conn, self._insert_one(job, now)) for job, now in jobs]
        conn.execute(_RELEASE)
        self._count_added([(job, now) for _, job, now in numbered])
        self._next_job_id = first + len(numbered)
        return [(True, i) for i, _, _ in numbered]

    def _insert_one(self, job: NewJob, now: float) -> Operation:
        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO jobs (channel, message, created_at) VALUES (?, ?, ?)",
                (job.channel, job.message, now),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            _INSERT_DELIVERIES.run(conn, _delivery_rows(job_id, job, now))
            idempotency.INSERT_KEYS.run(conn, idempotency.key_rows(job_id, job))
            self._count_added([(job, now)])
            return job_id

        return run

    def _count_added(self, jobs: list[tuple[NewJob, float]]) -> None:
        # One change per channel, not per job: this is on every message's path.
        added: dict[str, int] = {}
        for job, now in jobs:
            added[job.channel] = added.get(job.channel, 0) + len(job.recipients)
            if job.delay > 0:
                for _ in job.recipients:
                    self._changes.queued_until(job.channel, now + job.delay, now)
        for channel, number in added.items():
            self._changes.move(channel, None, QUEUED, number)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        self._next_job_id = None  # the ids of the jobs rolled back are free again
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

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
            rows = conn.execute(
                "UPDATE deliveries SET state = 'queued', lease_token = NULL, leased_until = NULL,"
                " updated_at = ? WHERE state = 'leased' RETURNING channel, due_at",
                (now,),
            ).fetchall()
            for channel, due_at in rows:
                self._changes.move(channel, LEASED, QUEUED)
                self._changes.queued_until(channel, due_at, now)
            return len(rows)

        return int(await self._write(run))

    async def add(self, job: NewJob, now: float) -> int:
        if self._lost is not None:
            raise self._lost
        future: asyncio.Future[Any] = self._running_loop().create_future()
        self._pending_jobs.append((job, now, future))
        self._schedule()
        return int(await future)

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
            if rows:
                self._changes.move(channel, QUEUED, LEASED, len(rows))
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
        # The jitter of a retry's delay: drawn only for what may be retried.
        draw = self._random.uniform
        spreads = [0.0 if o.kind == OutcomeKind.DELIVERED else draw(-1, 1) for o in outcomes]

        def run(conn: sqlite3.Connection) -> list[str | None]:
            changes = self._changes
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
            for channel, due_at in conn.execute(
                "UPDATE deliveries SET state = 'expired', updated_at = ?,"
                " last_error = COALESCE(last_error, 'time-to-live passed before delivery')"
                " WHERE state = 'queued' AND expires_at <= ? RETURNING channel, due_at",
                (now, now),
            ):
                expired[channel] = expired.get(channel, 0) + 1
                self._changes.move(channel, QUEUED, EXPIRED)
                self._changes.dequeued_early(channel, due_at, now)
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
                    conn, outcome, policy, now, draw(-1, 1), changes=self._changes
                )
                if state is not None:
                    lapsed.append(Lapsed(delivery_id, channel, state))
            return lapsed

        result: list[Lapsed] = await self._write(run)
        return result

    async def counts(self, now: float) -> dict[str, StoreCounts]:
        """From memory (see `store.counts`): no scan of the deliveries."""
        if self._write_conn is None:
            raise StoreError("the store is closed")
        return self._counts.snapshot(now)

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
                f"SELECT id, channel, state FROM deliveries{clauses}"
                f"{' AND' if clauses else ' WHERE'} state IN ({','.join('?' * len(terminal))})",
                (*arguments, *terminal),
            ).fetchall()
            return requeue_rows(conn, rows, now, ttl_for or {}, self._changes)

        return int(await self._write(run))

    async def requeue_each(
        self, now: float, ids: Sequence[int], *, by_job: bool, ttl_for: Mapping[str, float]
    ) -> dict[int, Retried | None]:
        def run(conn: sqlite3.Connection) -> dict[int, Retried | None]:
            return requeue_each(
                conn, ids, now, by_job=by_job, ttl_for=ttl_for, changes=self._changes
            )

        result: dict[int, Retried | None] = await self._write(run)
        return result

    async def list_jobs(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[JobSummary]:
        return await self._read(lambda conn: list_jobs(conn, channel, state, limit))

    async def prune(self, before: float, limit: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT id, channel, state FROM deliveries WHERE {FINISHED} AND updated_at < ?"
                " LIMIT ?",
                (before, limit),
            ).fetchall()
            if not rows:
                return 0
            ids = [row[0] for row in rows]
            for _, channel, state in rows:
                self._changes.move(channel, state, None)
            marks = ",".join("?" * len(ids))
            jobs = [
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT job_id FROM deliveries WHERE id IN ({marks})", ids
                )
            ]
            conn.execute(f"DELETE FROM attempts WHERE delivery_id IN ({marks})", ids)
            conn.execute(f"DELETE FROM deliveries WHERE id IN ({marks})", ids)
            # A job goes with its last delivery, and its idempotency key with it.
            job_marks = ",".join("?" * len(jobs))
            conn.execute(
                f"DELETE FROM jobs WHERE id IN ({job_marks}) AND NOT EXISTS"
                " (SELECT 1 FROM deliveries WHERE deliveries.job_id = jobs.id)",
                jobs,
            )
            conn.execute(
                f"DELETE FROM idempotency_keys WHERE job_id IN ({job_marks}) AND NOT EXISTS"
                " (SELECT 1 FROM jobs WHERE jobs.id = idempotency_keys.job_id)",
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


_INSERT_JOBS = RowsInsert("INSERT INTO jobs (id, channel, message, created_at)", "(?, ?, ?, ?)")
_INSERT_DELIVERIES = RowsInsert(
    "INSERT INTO deliveries (job_id, channel, recipient, state, due_at, expires_at, created_at,"
    " updated_at)",
    "(?, ?, ?, 'queued', ?, ?, ?, ?)",
)


def _delivery_rows(job_id: int, job: NewJob, now: float) -> list[tuple[Any, ...]]:
    due_at = now + job.delay
    expires_at = now + job.ttl
    return [
        (job_id, job.channel, recipient, due_at, expires_at, now, now)
        for recipient in job.recipients
    ]


def _messages(conn: sqlite3.Connection, job_ids: set[int]) -> dict[int, str]:
    if not job_ids:
        return {}
    ids = list(job_ids)
    rows = conn.execute(
        f"SELECT id, message FROM jobs WHERE id IN ({','.join('?' * len(ids))})", ids
    ).fetchall()
    return dict(rows)


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
