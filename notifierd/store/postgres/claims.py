"""Claiming on PostgreSQL: one statement leases the oldest due deliveries of a channel.

`FOR UPDATE SKIP LOCKED` in a MATERIALIZED CTE: hosts claiming the same channel at once take
different rows without waiting for each other, and the CTE is evaluated once, so the LIMIT
cannot be re-applied per row of the UPDATE (Oban's note in engines/basic.ex). The same
statement returns the messages and the earliest due time of what stays queued, so a claim is
one round trip and one commit.

The switches are checked in the same statement: nothing is leased while the service is paused,
the channel stopped, or cooling down after a remote's Retry-After, whichever host set it - a
host that has not heard of the change yet still cannot deliver.

A host leases only while its own heartbeat is fresh (younger than half of `dead_after`, on the
database's clock): a host that was stopped, or cut off, long enough to be declared dead by
others cannot take work it would then hold as a zombie (self-fencing, `nodes.py`). A host
that drains (its row says so) leases nothing either.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from typing import Any

from notifierd.messages import Delivery
from notifierd.store.base import ClaimResult

#: The switches' names, as the daemon sets them (maintenance.PAUSED_FLAG and STOPPED_FLAG).
PAUSED_FLAG = "paused"
STOPPED_FLAG = "stopped:"  # + the channel's name

CLAIM = """
WITH c AS MATERIALIZED (
    SELECT id FROM deliveries
     WHERE state = 'queued' AND channel = $1 AND due_at <= $2 AND expires_at > $2
       AND recipient <> ALL($3::text[])
       AND NOT EXISTS (SELECT 1 FROM flags WHERE name IN ($9, $10 || $1))
       AND NOT EXISTS (SELECT 1 FROM channel_state s
                        WHERE s.channel = $1 AND s.cooldown_until > $2)
       AND EXISTS (SELECT 1 FROM nodes WHERE node_id = $5 AND NOT draining
                   AND heartbeat_at > now() - make_interval(secs => $8))
     ORDER BY due_at
     LIMIT $4
       FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE deliveries d
       SET state = 'leased', attempts = d.attempts + 1, lease_owner = $5, lease_token = $6,
           leased_until = $7, updated_at = $2
      FROM c WHERE d.id = c.id
    RETURNING d.id, d.job_id, d.recipient, d.attempts, d.due_at, d.expires_at, d.created_at
), rest AS (
    SELECT min(q.due_at) AS next_due FROM deliveries q
     WHERE q.state = 'queued' AND q.channel = $1 AND NOT q.id = ANY(ARRAY(SELECT id FROM c))
)
SELECT l.id, l.recipient, l.attempts, l.due_at, l.expires_at, l.created_at, j.message,
       rest.next_due
  FROM rest
  LEFT JOIN leased l ON true
  LEFT JOIN jobs j ON j.id = l.job_id
"""


async def claim(
    conn: Any,
    *,
    channel: str,
    limit: int,
    now: float,
    lease_seconds: float,
    exclude_recipients: Collection[str],
    owner: str,
    fresh_within: float,
) -> ClaimResult:
    token = secrets.randbits(62)
    leased_until = now + lease_seconds
    rows = await conn.fetch(
        CLAIM,
        channel,
        now,
        list(exclude_recipients),
        limit,
        owner,
        token,
        leased_until,
        fresh_within,
        PAUSED_FLAG,
        STOPPED_FLAG,
    )
    next_due = rows[0]["next_due"] if rows else None
    leased = [row for row in rows if row["id"] is not None]
    # RETURNING gives rows in no promised order: restore "oldest due first".
    leased.sort(key=lambda row: (row["due_at"], row["id"]))
    deliveries = [
        Delivery(
            row["id"],
            token,
            channel,
            row["recipient"],
            row["message"],
            row["attempts"],
            row["expires_at"],
            leased_until,
            row["created_at"],
        )
        for row in leased
    ]
    return ClaimResult(deliveries, None if next_due is None else float(next_due))
