"""Group commit of new jobs on PostgreSQL (DESIGN §3, §9): the jobs added during one turn of
the event loop go in one statement, and each caller's future resolves only after its COMMIT,
so the HTTP handler answers 204 only for a job that is durable. While a batch commits, the
next one gathers; it is sent the moment the commit is done.

A batch without idempotency keys (the usual case) is one statement in autocommit: one round
trip, one commit. A batch with keys first looks its keys up, in the same transaction. Should a
batch be refused for its data (text PostgreSQL cannot hold), each job is tried on its own, so
that one bad job fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import asyncpg
import structlog

from notifierd.errors import IdempotencyKeyReused, StoreError
from notifierd.store.base import NewJob
from notifierd.store.postgres.failures import DRIVER_ERRORS, is_data_error, store_error

log = structlog.get_logger("notifierd.store")

#: (succeeded, job id or the exception): what each job's caller gets.
Result = tuple[bool, Any]
Pending = tuple[NewJob, float, "asyncio.Future[int]"]
#: Tries of a batch whose idempotency key another host stored at the same moment.
KEY_RACE_TRIES = 3

INSERT_JOBS = """
WITH input AS MATERIALIZED (
    SELECT nextval('jobs_id_seq'::regclass) AS id, t.*
      FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[],
                                 $5::float8[]) WITH ORDINALITY
                       AS u(channel, message, now, delay, ttl, ord)
             ORDER BY ord) AS t
), new_jobs AS (
    INSERT INTO jobs (id, channel, message, created_at)
    SELECT id, channel, message, now FROM input
), new_deliveries AS (
    INSERT INTO deliveries (job_id, channel, recipient, state, due_at, expires_at, created_at,
                            updated_at)
    SELECT i.id, i.channel, r.recipient, 'queued', i.now + i.delay, i.now + i.ttl, i.now, i.now
      FROM unnest($6::bigint[], $7::text[]) WITH ORDINALITY AS r(job, recipient, n)
      JOIN input i ON i.ord = r.job
     ORDER BY r.n
), new_keys AS (
    INSERT INTO idempotency_keys (channel, key, job_id, digest)
    SELECT i.channel, k.key, i.id, k.digest
      FROM unnest($8::bigint[], $9::text[], $10::text[]) AS k(job, key, digest)
      JOIN input i ON i.ord = k.job
)
SELECT id FROM input ORDER BY ord
"""

LOOKUP_KEYS = """
SELECT k.channel, k.key, k.job_id, k.digest
  FROM idempotency_keys k
  JOIN unnest($1::text[], $2::text[]) AS w(channel, key) USING (channel, key)
"""


class KeyPlan(NamedTuple):
    #: Indexes of the jobs to insert.
    fresh: list[int]
    #: Index -> result, for the jobs whose key is stored already.
    found: dict[int, Result]
    #: Index -> index of the first job of the batch with the same channel and key.
    same_as: dict[int, int]


class Intake:
    """The batcher. `acquire` lends a pooled connection; `committed` is told the channels of
    every batch that committed (to wake their dispatchers)."""

    def __init__(
        self, url: str, acquire: Callable[[], Any], committed: Callable[[set[str]], None]
    ) -> None:
        self._url = url
        self._acquire = acquire
        self._committed = committed
        self._pending: list[Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._scheduled = False
        #: Set while nothing is pending or committing.
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, job: NewJob, now: float) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((job, now, future))
        self._idle.clear()
        if not self._scheduled and self._task is None:
            # Not at once: let every add of this turn of the loop join the batch.
            self._scheduled = True
            loop.call_soon(self._start)
        return future

    async def drain(self) -> None:
        """Wait until nothing is pending or committing."""
        await self._idle.wait()

    def _start(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            self._task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._task.add_done_callback(self._done)
        else:
            self._idle.set()

    def _done(self, _task: asyncio.Task[None]) -> None:
        self._task = None
        if self._pending:
            self._start()
        elif not self._scheduled:
            self._idle.set()

    async def _commit(self, batch: list[Pending]) -> None:
        jobs = [(job, now) for job, now, _ in batch]
        try:
            results = await self._insert_batch(jobs)
        except DRIVER_ERRORS as exc:
            error = store_error(self._url, "write to", exc)
            results = [(False, error)] * len(batch)
        except StoreError as exc:
            results = [(False, exc)] * len(batch)
        except Exception as exc:
            # A bug, not the database: its callers get it (a 500 each) rather than an answer
            # that never comes.
            log.exception("store.intake_failed")
            results = [(False, exc)] * len(batch)
        committed = {job.channel for (job, _), (ok, _) in zip(jobs, results, strict=True) if ok}
        for (_, _, future), (ok, value) in zip(batch, results, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(int(value))
            else:
                future.set_exception(value)
        if committed:
            self._committed(committed)

    async def _insert_batch(self, jobs: list[tuple[NewJob, float]]) -> list[Result]:
        async with self._acquire() as conn:
            if not any(job.idempotency is not None for job, _ in jobs):
                try:
                    ids = await conn.fetch(INSERT_JOBS, *_arguments(jobs))
                except DRIVER_ERRORS as exc:
                    if not is_data_error(exc) or len(jobs) == 1:
                        raise
                    return [await self._insert_alone(conn, job) for job in jobs]
                return [(True, row[0]) for row in ids]
            for attempt in range(KEY_RACE_TRIES):
                try:
                    async with conn.transaction():
                        return await _insert_with_keys(conn, jobs)
                except asyncpg.UniqueViolationError:
                    # Another host stored one of these keys meanwhile: look them up again.
                    if attempt == KEY_RACE_TRIES - 1:
                        raise
                except DRIVER_ERRORS as exc:
                    if not is_data_error(exc) or len(jobs) == 1:
                        raise
                    return [await self._insert_alone(conn, job) for job in jobs]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _insert_alone(self, conn: Any, job: tuple[NewJob, float]) -> Result:
        try:
            async with conn.transaction():
                [result] = await _insert_with_keys(conn, [job])
        except DRIVER_ERRORS as exc:
            if not is_data_error(exc):
                raise
            log.warning("store.job_refused", channel=job[0].channel, error=str(exc))
            return False, store_error(self._url, "store a job in", exc)
        return result


async def _insert_with_keys(conn: Any, jobs: list[tuple[NewJob, float]]) -> list[Result]:
    """Inside a transaction: the jobs whose key is new are inserted, the others answered with
    the job their key names (or IdempotencyKeyReused)."""
    plan = _plan(await _stored_keys(conn, [job for job, _ in jobs]), [job for job, _ in jobs])
    fresh = [jobs[index] for index in plan.fresh]
    inserted: list[Result] = []
    if fresh:
        rows = await conn.fetch(INSERT_JOBS, *_arguments(fresh))
        inserted = [(True, row[0]) for row in rows]
    return _results(plan, [job for job, _ in jobs], inserted)


def _arguments(jobs: Sequence[tuple[NewJob, float]]) -> list[list[Any]]:
    owners: list[int] = []
    recipients: list[str] = []
    key_owners: list[int] = []
    keys: list[str] = []
    digests: list[str] = []
    for ordinal, (job, _) in enumerate(jobs, start=1):
        owners.extend([ordinal] * len(job.recipients))
        recipients.extend(job.recipients)
        if job.idempotency is not None:
            key_owners.append(ordinal)
            keys.append(job.idempotency[0])
            digests.append(job.idempotency[1])
    return [
        [job.channel for job, _ in jobs],
        [job.message for job, _ in jobs],
        [now for _, now in jobs],
        [float(job.delay) for job, _ in jobs],
        [float(job.ttl) for job, _ in jobs],
        owners,
        recipients,
        key_owners,
        keys,
        digests,
    ]


async def _stored_keys(conn: Any, jobs: Sequence[NewJob]) -> dict[tuple[str, str], tuple[int, str]]:
    slots = [(job.channel, job.idempotency[0]) for job in jobs if job.idempotency is not None]
    rows = await conn.fetch(LOOKUP_KEYS, [c for c, _ in slots], [k for _, k in slots])
    return {(row[0], row[1]): (int(row[2]), str(row[3])) for row in rows}


def _plan(stored: dict[tuple[str, str], tuple[int, str]], jobs: Sequence[NewJob]) -> KeyPlan:
    fresh: list[int] = []
    found: dict[int, Result] = {}
    same_as: dict[int, int] = {}
    first: dict[tuple[str, str], int] = {}
    for index, job in enumerate(jobs):
        if job.idempotency is None:
            fresh.append(index)
            continue
        key, digest = job.idempotency
        slot = (job.channel, key)
        if slot in first:
            same_as[index] = first[slot]
        elif slot in stored:
            found[index] = _reuse(*stored[slot], digest)
        else:
            first[slot] = index
            fresh.append(index)
    return KeyPlan(fresh, found, same_as)


def _results(plan: KeyPlan, jobs: Sequence[NewJob], inserted: Sequence[Result]) -> list[Result]:
    done: dict[int, Result] = dict(zip(plan.fresh, inserted, strict=True))
    done.update(plan.found)
    for index, original in plan.same_as.items():
        result = done[original]
        first, again = jobs[original].idempotency, jobs[index].idempotency
        if result[0] and first is not None and again is not None:
            result = _reuse(result[1], first[1], again[1])
        done[index] = result
    return [done[index] for index in range(len(jobs))]


def _reuse(job_id: int, stored: str, asked: str) -> Result:
    if stored == asked:
        return True, job_id
    return False, IdempotencyKeyReused(job_id)
