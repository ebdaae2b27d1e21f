"""The operator's writes on PostgreSQL: retry (requeue) finished deliveries, and prune the
journal. Large sets go in batches, each its own short transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from notifierd.states import RETRYABLE_STATES
from notifierd.store.base import Retried

#: A delivery's time-to-live after a retry when its channel is no longer configured.
DEFAULT_TTL = 86400.0
RETRYABLE = sorted(state.value for state in RETRYABLE_STATES)
REQUEUE_BATCH = 5000

# The new time-to-live per channel comes as two arrays (channel, ttl).
_REQUEUE_SET = """
   SET state = 'queued', attempts = 0, due_at = $1,
       expires_at = $1 + COALESCE(
           (SELECT t.ttl FROM unnest($2::text[], $3::float8[]) AS t(channel, ttl)
             WHERE t.channel = d.channel), $4),
       lease_owner = NULL, lease_token = NULL, leased_until = NULL, updated_at = $1
"""

REQUEUE_MATCHING = f"""
WITH picked AS (
    SELECT id FROM deliveries
     WHERE state = ANY($5::text[])
       AND ($6::bigint[] IS NULL OR id = ANY($6::bigint[]))
       AND ($7::text IS NULL OR channel = $7) AND ($8::text IS NULL OR state = $8)
     ORDER BY id LIMIT $9 FOR UPDATE
)
UPDATE deliveries d {_REQUEUE_SET} FROM picked WHERE d.id = picked.id RETURNING d.channel
"""

REQUEUE_IDS = f"""
UPDATE deliveries d {_REQUEUE_SET} WHERE d.id = ANY($5::bigint[]) RETURNING d.channel
"""

PRUNE_DELIVERIES = """
WITH picked AS (
    SELECT id FROM deliveries
     WHERE state NOT IN ('queued', 'leased') AND updated_at < $1
     LIMIT $2 FOR UPDATE SKIP LOCKED
), journal AS (
    DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM picked)
)
DELETE FROM deliveries WHERE id IN (SELECT id FROM picked) RETURNING job_id
"""

# A job goes with its last delivery, and its idempotency key with it.
PRUNE_JOBS = """
WITH gone AS (
    DELETE FROM jobs j WHERE j.id = ANY($1::bigint[])
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.job_id = j.id)
    RETURNING id
)
DELETE FROM idempotency_keys WHERE job_id IN (SELECT id FROM gone)
"""


def _ttl_arguments(now: float, ttl_for: Mapping[str, float]) -> list[Any]:
    return [now, list(ttl_for), [float(ttl) for ttl in ttl_for.values()], DEFAULT_TTL]


async def requeue_batch(
    conn: Any,
    now: float,
    *,
    ids: Sequence[int] | None,
    channel: str | None,
    state: str | None,
    ttl_for: Mapping[str, float],
) -> list[str]:
    """One batch of the operator's retry by filter; returns the channel of each delivery
    requeued (fewer than REQUEUE_BATCH: the last batch)."""
    rows = await conn.fetch(
        REQUEUE_MATCHING,
        *_ttl_arguments(now, ttl_for),
        RETRYABLE,
        None if ids is None else list(ids),
        channel,
        state,
        REQUEUE_BATCH,
    )
    return [row[0] for row in rows]


async def requeue_each(
    conn: Any, now: float, ids: Sequence[int], *, by_job: bool, ttl_for: Mapping[str, float]
) -> tuple[dict[int, Retried | None], set[str]]:
    """Inside a transaction: the retry of each job (or delivery) of `ids`, reported per id,
    and the channels of what was requeued."""
    column = "job_id" if by_job else "id"
    rows = await conn.fetch(
        f"SELECT id, {column} AS item, state FROM deliveries WHERE {column} = ANY($1::bigint[])"
        " ORDER BY id FOR UPDATE",
        list(ids),
    )
    by_item: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        by_item.setdefault(row["item"], []).append((row["id"], row["state"]))
    requeued: set[int] = set()
    done: dict[int, Retried | None] = {}
    for item in ids:  # in order: an id named twice finds its deliveries queued the second time
        found = by_item.get(item)
        if found is None:
            done[item] = None
            continue
        count = 0
        untouched: dict[str, int] = {}
        for delivery_id, state in found:
            if delivery_id in requeued:
                untouched["queued"] = untouched.get("queued", 0) + 1
            elif state in RETRYABLE:
                requeued.add(delivery_id)
                count += 1
            else:
                untouched[state] = untouched.get(state, 0) + 1
        done[item] = Retried(count, untouched)
    channels: set[str] = set()
    if requeued:
        rows = await conn.fetch(REQUEUE_IDS, *_ttl_arguments(now, ttl_for), sorted(requeued))
        channels = {row[0] for row in rows}
    return done, channels


async def prune(conn: Any, before: float, limit: int) -> int:
    """Inside a transaction: up to `limit` finished deliveries changed before `before`, with
    their attempts, and the jobs left without deliveries."""
    rows = await conn.fetch(PRUNE_DELIVERIES, before, limit)
    if rows:
        await conn.execute(PRUNE_JOBS, list({row[0] for row in rows}))
    return len(rows)
