"""Idempotency keys in the SQLite Store: which jobs of a transaction are new, which were made
before (by an earlier transaction, or by another request of the same one) and which reuse a key
for another message.

Only the writer inserts jobs, and the jobs of one transaction are looked at together here, so a
key is looked up and inserted with no other writer in between; the table's primary key
(channel, key) is the backstop should that ever change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from notifierd.errors import IdempotencyKeyReused
from notifierd.store.base import NewJob
from notifierd.store.sqlite.rows import RowsInsert

#: (succeeded, job id or the exception): what each job's caller gets.
Result = tuple[bool, Any]

INSERT_KEYS = RowsInsert(
    "INSERT INTO idempotency_keys (channel, key, job_id, digest)", "(?, ?, ?, ?)"
)
_LOOKUP = "SELECT job_id, digest FROM idempotency_keys WHERE channel = ? AND key = ?"


class KeyPlan(NamedTuple):
    #: Indexes of the jobs to insert.
    fresh: list[int]
    #: Index -> result, for the jobs whose key is stored already.
    found: dict[int, Result]
    #: Index -> index of the first job of the transaction with the same channel and key.
    same_as: dict[int, int]


def has_keys(jobs: Sequence[NewJob]) -> bool:
    return any(job.idempotency is not None for job in jobs)


def plan(conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> KeyPlan:
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
            continue
        row = conn.execute(_LOOKUP, slot).fetchone()
        if row is None:
            first[slot] = index
            fresh.append(index)
        else:
            found[index] = _reuse(row[0], row[1], digest)
    return KeyPlan(fresh, found, same_as)


def results(key_plan: KeyPlan, jobs: Sequence[NewJob], inserted: Sequence[Result]) -> list[Result]:
    """Each job's result in the order of `jobs`, from those of the fresh ones (`inserted`)."""
    done: dict[int, Result] = dict(zip(key_plan.fresh, inserted, strict=True))
    done.update(key_plan.found)
    for index, original in key_plan.same_as.items():
        result = done[original]
        if result[0]:
            first, again = jobs[original].idempotency, jobs[index].idempotency
            assert first is not None and again is not None
            result = _reuse(result[1], first[1], again[1])
        done[index] = result
    return [done[index] for index in range(len(jobs))]


def key_rows(job_id: int, job: NewJob) -> list[tuple[Any, ...]]:
    if job.idempotency is None:
        return []
    key, digest = job.idempotency
    return [(job.channel, key, job_id, digest)]


def _reuse(job_id: int, stored: str, asked: str) -> Result:
    if stored == asked:
        return True, job_id
    return False, IdempotencyKeyReused(job_id)
