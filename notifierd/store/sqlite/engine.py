"""The SQLite Store's write engine: one connection, one writer, group commit.

Every write waiting at a moment shares one transaction, so the cost of the fsync that
`synchronous=FULL` makes at each commit is shared by all of them, and each caller's future
resolves only after the COMMIT: the HTTP handler answers 204 only for a job that is on disk.

The statements of a transaction run on the event loop's thread (they touch only SQLite's page
cache, a few microseconds each); only the COMMIT, which waits for the disk, runs on the writer
thread. While it waits, the loop goes on and the next writes gather; they run the moment the
COMMIT is done. Running the statements on the writer thread too made each of them wait for the
GIL behind the busy loop, which cost more than the statements themselves.

Jobs added in one transaction are inserted together (`intake.py`). Each other operation runs
inside a savepoint, so one failing operation does not undo the others that share its
transaction. The count changes an operation records (`changes`) are applied to the live
counts only if its transaction commits.

The database file is watched (`guard.py`): once it is deleted or replaced, every write fails
with `StorageLost`: a commit into a file nobody will open again must not be answered as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from notifierd.errors import StorageLost, StoreError
from notifierd.store.base import NewJob
from notifierd.store.counts import CountChanges, DeliveryCounts
from notifierd.store.sqlite.connections import connect_writer, count_all
from notifierd.store.sqlite.guard import WATCH_SECONDS, DatabaseGuard
from notifierd.store.sqlite.intake import RELEASE, ROLLBACK, SAVEPOINT, JobInserter, Operation

log = structlog.get_logger("notifierd.store")

Result = tuple[bool, Any]
PendingJob = tuple[NewJob, float, "asyncio.Future[Any]"]


class GroupCommit:
    """The writer connection and the transactions on it."""

    def __init__(self, path: Path, guard: DatabaseGuard) -> None:
        self.path = path
        self._guard = guard
        #: Set once the database file has left its path: every write fails with it.
        self.lost: StorageLost | None = None
        self._watch: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Operation, asyncio.Future[Any]]] = []
        self._pending_jobs: list[PendingJob] = []
        #: Set while a transaction is being committed (and a batch is scheduled).
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        #: The loop the Store was opened on: looked up once (asyncio's lookup makes a getpid()
        #: system call on Python 3.11, and the hot path would make several per message).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs = JobInserter()
        self.counts = DeliveryCounts()
        #: The count changes of the transaction being built (see `store.counts`).
        self.changes = CountChanges()
        #: Channels the transaction being built gave work to, besides its jobs' (`woken`).
        self.woken: set[str] = set()
        #: Called after a commit with the channels it gave new work; None: nobody asks.
        self.on_new_work: Callable[[set[str]], None] | None = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def start(self) -> None:
        """Open the writer's connection, count the deliveries, watch the file."""
        loop = self._loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(
            self._writer, connect_writer, self.path, self._guard
        )
        await loop.run_in_executor(self._writer, count_all, self._conn, self.counts)
        self._watch = loop.create_task(self._watch_file())

    async def stop(self) -> None:
        """Cancel the watch, wait for the transaction under way, close the connection."""
        if self._watch is not None:
            self._watch.cancel()
        await self._idle.wait()
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._conn.close)
            self._conn = None
        self._writer.shutdown()

    def write(self, operation: Operation) -> asyncio.Future[Any]:
        """Run `operation(conn)` in the next transaction; the future resolves to its result
        once that transaction committed."""
        future: asyncio.Future[Any] = self._running_loop().create_future()
        if self._conn is None or self.lost is not None:
            future.set_exception(self.lost or StoreError("the store is closed"))
            return future
        self._pending.append((operation, future))
        self._schedule()
        return future

    def add(self, job: NewJob, now: float) -> asyncio.Future[Any]:
        """Insert `job` in the next transaction; the future resolves to its id."""
        if self.lost is not None:
            raise self.lost
        future: asyncio.Future[Any] = self._running_loop().create_future()
        self._pending_jobs.append((job, now, future))
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
        changes = self.changes = CountChanges()
        woken: set[str] = set()
        self.woken = woken
        conn = self._conn
        if conn is None:
            self._settle(futures, None, StoreError("the store is closed"))
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = self._jobs.insert(conn, jobs, changes, self.run)
            results += [self.run(conn, operation) for operation, _ in batch]
        except sqlite3.Error as exc:
            self._rollback(conn)
            self._settle(futures, None, StoreError(f"could not write to {self.path}: {exc}"))
            return
        if self.on_new_work is not None:
            woken.update(job.channel for job, _, _ in jobs)
        commit = self._running_loop().run_in_executor(self._writer, self._commit, conn)
        commit.add_done_callback(
            lambda done: self._committed(done, futures, results, changes, woken)
        )

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
        results: list[Result],
        changes: CountChanges,
        woken: set[str],
    ) -> None:
        exc = commit.exception()
        error: StoreError | None = None
        if isinstance(exc, StorageLost):
            self.mark_lost(exc)
            error = exc
        elif exc is not None:
            error = StoreError(f"could not commit to {self.path}: {exc}")
        else:
            self.counts.apply(changes)
            if self.on_new_work is not None and woken:
                self.on_new_work(woken)
        self._settle(futures, results, error)

    def _settle(
        self,
        futures: list[asyncio.Future[Any]],
        results: list[Result] | None,
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

    def run(self, conn: sqlite3.Connection, operation: Operation) -> Result:
        """`operation(conn)` inside a savepoint: on failure, its statements and its count
        changes are undone, and the others of the transaction stay."""
        conn.execute(SAVEPOINT)
        mark = self.changes.mark()
        try:
            value = operation(conn)
        except Exception as exc:
            self.changes.undo(mark)
            conn.execute(ROLLBACK)
            conn.execute(RELEASE)
            return False, _as_store_error(exc)
        conn.execute(RELEASE)
        return True, value

    def _rollback(self, conn: sqlite3.Connection) -> None:
        self._jobs.forget_ids()  # the ids of the jobs rolled back are free again
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    async def _watch_file(self) -> None:
        while self.lost is None:
            await asyncio.sleep(WATCH_SECONDS)
            reason = self._guard.lost()
            if reason is not None:
                self.mark_lost(StorageLost(reason))

    def mark_lost(self, error: StorageLost) -> None:
        if self.lost is None:
            self.lost = error
            wal = self._guard.set_aside_wal()
            log.error("store.lost", error=str(error), recovery=self._guard.recovery_hint(wal))


def _as_store_error(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return StoreError(str(exc))
    return exc
