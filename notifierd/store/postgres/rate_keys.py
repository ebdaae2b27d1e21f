"""Rate keys shared by the hosts (DESIGN §9, "Rate keys"): one owner dispatches a key at a time.

A key's row names its owner (a node id), an epoch that moves each time the key changes hands,
a lease on the database's clock and the pacing state saved last. Another owner takes the key
once it is released, its lease ran out, or its owner's node row is gone (declared dead by the
reaper, `nodes.py`): one statement decides, so two hosts never both get it. A renewal or a
release under an epoch that moved changes nothing: the old holder learns it lost the key.
"""

from __future__ import annotations

from typing import Any

from notifierd.store.base import RateKeyLease

ACQUIRE = """
INSERT INTO rate_keys AS r (key, owner, epoch, leased_until)
     VALUES ($1, $2, 1, now() + make_interval(secs => $3))
ON CONFLICT (key) DO UPDATE
   SET owner = EXCLUDED.owner,
       epoch = CASE WHEN r.owner = EXCLUDED.owner THEN r.epoch ELSE r.epoch + 1 END,
       leased_until = EXCLUDED.leased_until
 WHERE r.owner IS NULL OR r.owner = EXCLUDED.owner OR r.leased_until < now()
    OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = r.owner)
RETURNING epoch, checkpoint
"""

RENEW = """
UPDATE rate_keys SET leased_until = now() + make_interval(secs => $5), checkpoint = $4
 WHERE key = $1 AND owner = $2 AND epoch = $3
RETURNING 1
"""

RELEASE = """
UPDATE rate_keys SET owner = NULL, leased_until = NULL, checkpoint = $4
 WHERE key = $1 AND owner = $2 AND epoch = $3
"""


async def acquire(conn: Any, key: str, owner: str, lease_seconds: float) -> RateKeyLease | None:
    row = await conn.fetchrow(ACQUIRE, key, owner, lease_seconds)
    return None if row is None else RateKeyLease(int(row[0]), row[1])


async def renew(
    conn: Any, key: str, owner: str, epoch: int, *, checkpoint: str, lease_seconds: float
) -> bool:
    return await conn.fetchval(RENEW, key, owner, epoch, checkpoint, lease_seconds) is not None


async def release(conn: Any, key: str, owner: str, epoch: int, checkpoint: str) -> None:
    await conn.execute(RELEASE, key, owner, epoch, checkpoint)
