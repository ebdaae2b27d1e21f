"""Deliveries by channel and state on PostgreSQL, without counting rows (a full `COUNT(*)` per
status or metrics scrape, on every host, is the anchors' known complaint).

The schema's statement triggers append every change to `delivery_tally_changes`; `rollup`
folds those into `delivery_tally`, one host at a time; a read sums the two. Queued deliveries
are tallied by bucket of due time (`schema.DUE_BUCKET` seconds): the buckets after now's are
delayed, those before it due; only the deliveries of now's own bucket are counted, through
the due-time index, to split it exactly.
"""

from __future__ import annotations

import math
from typing import Any

from notifierd.states import DeliveryState
from notifierd.store.base import StoreCounts
from notifierd.store.postgres.schema import DUE_BUCKET

#: The advisory lock of the rollup ("tally" in ASCII): one host folds, the others go on.
ROLLUP_LOCK = 0x74616C6C79
QUEUED = DeliveryState.QUEUED.value
#: StoreCounts' field for each stored state other than queued (split by due time).
FIELDS = {
    DeliveryState.LEASED.value: "in_flight",
    DeliveryState.DELIVERED.value: "delivered",
    DeliveryState.FAILED.value: "failed",
    DeliveryState.DEAD.value: "dead",
    DeliveryState.EXPIRED.value: "expired",
}

ROLLUP = """
WITH moved AS (
    DELETE FROM delivery_tally_changes RETURNING channel, state, due_bucket, n
)
INSERT INTO delivery_tally AS t (channel, state, due_bucket, n)
SELECT channel, state, due_bucket, sum(n) FROM moved GROUP BY 1, 2, 3
    ON CONFLICT (channel, state, due_bucket) DO UPDATE SET n = t.n + excluded.n
"""

READ = """
SELECT channel, state, due_bucket, sum(n)::bigint AS n FROM (
    SELECT channel, state, due_bucket, n FROM delivery_tally
    UNION ALL
    SELECT channel, state, due_bucket, n FROM delivery_tally_changes
) AS t GROUP BY 1, 2, 3 HAVING sum(n) <> 0
"""

# Per channel: its queued deliveries of now's bucket that are due after now.
LATER_IN_BUCKET = f"""
SELECT c.channel, (
    SELECT count(*) FROM deliveries d
     WHERE d.state = 'queued' AND d.channel = c.channel AND d.due_at > $2
       AND d.due_at < ($3 + 1) * {DUE_BUCKET}::float8
       AND floor(d.due_at / {DUE_BUCKET})::bigint = $3
) FROM unnest($1::text[]) AS c(channel)
"""


async def rollup(conn: Any) -> None:
    """Inside a transaction: fold the changes into the totals, unless another host is at it."""
    if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ROLLUP_LOCK):
        await conn.execute(ROLLUP)
        await conn.execute("DELETE FROM delivery_tally WHERE n = 0")


async def read(conn: Any, now: float) -> dict[str, StoreCounts]:
    """Inside a REPEATABLE READ transaction (the two reads must see the same moment)."""
    bucket = math.floor(now / DUE_BUCKET)
    states: dict[str, dict[str, int]] = {}
    later: dict[str, int] = {}
    current: set[str] = set()
    for row in await conn.fetch(READ):
        channel, state, due_bucket, number = row
        by_state = states.setdefault(channel, {})
        by_state[state] = by_state.get(state, 0) + number
        if state == QUEUED and due_bucket > bucket:
            later[channel] = later.get(channel, 0) + number
        elif state == QUEUED and due_bucket == bucket:
            current.add(channel)
    if current:
        for channel, number in await conn.fetch(LATER_IN_BUCKET, sorted(current), now, bucket):
            later[channel] = later.get(channel, 0) + number
    result: dict[str, StoreCounts] = {}
    for channel, by_state in states.items():
        if not any(by_state.values()):
            continue
        queued = by_state.get(QUEUED, 0)
        delayed = min(queued, later.get(channel, 0))
        counts = StoreCounts(queued=queued - delayed, delayed=delayed)
        for state, field in FIELDS.items():
            setattr(counts, field, by_state.get(state, 0))
        result[channel] = counts
    return result
