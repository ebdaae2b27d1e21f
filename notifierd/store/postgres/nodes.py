"""Hosts sharing the database (DESIGN §9, "Liveness"): each heartbeats its `nodes` row on the
database's clock; a reaper on every host declares a host dead once its heartbeat is older than
`dead_after`, and requeues its leases **in the same statement** that deletes its row, so there
is no moment where a host is gone but its deliveries are still held (procrastinate #1518).
Leases of an owner with no row at all (a host that stopped cleanly and left some, one that was
reaped before) go back too. Attempts stay counted: a message that kills hosts still ends DEAD.

A host whose heartbeat finds its row gone was declared dead: its leases are someone else's now
(their late outcomes are ignored by the token fence); it registers again under a new node id.
Lease expiry stays the backstop for a worker that hangs on a live host.

The row also says whether the host drains (its claims lease nothing) and what it published
about itself (`runtime`: its pid, its channels' states). The housekeeping runs on the holder
of the leader lease, a row with an expiry on the database's clock (not a session's advisory
lock, which a pooler in transaction mode would break): a host takes it when it is free, ran
out, or its holder's node row is gone, and only while its own heartbeat is fresh.
"""

from __future__ import annotations

import json
from typing import Any

from notifierd.store.base import NodeRecord

#: The leader lease's name: the housekeeping.
LEADER = "housekeeping"

#: The database clock as the Store's times are: seconds since the epoch.
DB_NOW = "extract(epoch FROM now())::float8"

REGISTER = """
INSERT INTO nodes (node_id, runtime, draining) VALUES ($1, $2::jsonb, $3)
    ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = clock_timestamp()
"""

# Returns the database's clock too: the heartbeat is the Store's clock sync.
HEARTBEAT = """
UPDATE nodes SET heartbeat_at = clock_timestamp() WHERE node_id = $1
RETURNING extract(epoch FROM clock_timestamp())::float8
"""

LEAVE = "DELETE FROM nodes WHERE node_id = $1"

_REQUEUE = f"""
UPDATE deliveries d
   SET state = 'queued', lease_owner = NULL, lease_token = NULL, leased_until = NULL,
       last_error = 'host ' || d.lease_owner || ' stopped heart-beating',
       updated_at = {DB_NOW}
"""

# The dead: rows whose heartbeat is older than $1 seconds (this host's own too: a host that
# was stopped that long is dead, and finds out at its next heartbeat), and owners without a
# row. (The DELETE is not visible to the rest of the statement: hence both conditions.)
REAP = f"""
WITH dead AS (
    DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1)
    RETURNING node_id
)
{_REQUEUE}
 WHERE d.state = 'leased'
   AND (d.lease_owner IN (SELECT node_id FROM dead)
        OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = d.lease_owner))
RETURNING d.channel, d.lease_owner
"""

# One named owner declared gone: its leases (its row, if it has one, is the reaper's).
RECOVER_OWNER = f"""
{_REQUEUE}
 WHERE d.state = 'leased' AND d.lease_owner = $1
RETURNING d.channel
"""

# Leases of owners that are not alive (no row, or a stale one), and this host's own: at
# start-up, a lease under this host's id is from an earlier run that used it.
RECOVER_DEAD = f"""
WITH dead AS (
    DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1)
    RETURNING node_id
)
{_REQUEUE}
 WHERE d.state = 'leased'
   AND (d.lease_owner = $2 OR d.lease_owner IS NULL
        OR d.lease_owner IN (SELECT node_id FROM dead)
        OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = d.lease_owner))
RETURNING d.channel
"""


NODES = """
SELECT n.node_id, extract(epoch FROM n.started_at)::float8,
       greatest(0, extract(epoch FROM clock_timestamp() - n.heartbeat_at))::float8,
       n.draining,
       EXISTS (SELECT 1 FROM leader_lease l
                WHERE l.name = $1 AND l.owner = n.node_id AND l.expires_at > now()),
       (SELECT count(*) FROM deliveries d WHERE d.state = 'leased' AND d.lease_owner = n.node_id),
       ARRAY(SELECT r.key FROM rate_keys r
              WHERE r.owner = n.node_id AND r.leased_until > now() ORDER BY r.key),
       n.runtime::text
  FROM nodes n
 ORDER BY n.started_at, n.node_id
"""

SET_DRAINING = "UPDATE nodes SET draining = $2 WHERE node_id = $1"
PUBLISH = "UPDATE nodes SET runtime = $2::jsonb WHERE node_id = $1"

# $2 takes (or keeps) the lease for $3 seconds if its heartbeat is younger than $4 seconds.
LEAD = """
INSERT INTO leader_lease AS l (name, owner, expires_at)
SELECT $1, $2, now() + make_interval(secs => $3)
 WHERE EXISTS (SELECT 1 FROM nodes
                WHERE node_id = $2 AND heartbeat_at > now() - make_interval(secs => $4))
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
 WHERE l.owner = excluded.owner OR l.expires_at <= now()
    OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = l.owner)
RETURNING l.owner
"""


async def register(conn: Any, node_id: str, runtime: str = "{}", draining: bool = False) -> None:
    await conn.execute(REGISTER, node_id, runtime, draining)


async def list_nodes(conn: Any) -> list[NodeRecord]:
    rows = await conn.fetch(NODES, LEADER)
    return [
        NodeRecord(row[0], row[1], row[2], row[3], row[4], row[5], list(row[6]), json.loads(row[7]))
        for row in rows
    ]


async def set_draining(conn: Any, node_id: str, draining: bool) -> None:
    await conn.execute(SET_DRAINING, node_id, draining)


async def publish(conn: Any, node_id: str, runtime: str) -> None:
    await conn.execute(PUBLISH, node_id, runtime)


async def lead(conn: Any, node_id: str, seconds: float, fresh_within: float) -> bool:
    """Whether `node_id` holds the leader lease now, for `seconds` more."""
    return await conn.fetchval(LEAD, LEADER, node_id, seconds, fresh_within) is not None


async def heartbeat(conn: Any, node_id: str) -> float | None:
    """The database's clock, or None when this node's row is gone (declared dead)."""
    value = await conn.fetchval(HEARTBEAT, node_id)
    return None if value is None else float(value)


async def leave(conn: Any, node_id: str) -> None:
    await conn.execute(LEAVE, node_id)


async def reap(conn: Any, dead_after: float) -> list[tuple[str, str]]:
    """Declare the silent hosts dead and requeue their leases; returns (channel, owner) of
    each delivery requeued."""
    return [(row[0], row[1]) for row in await conn.fetch(REAP, dead_after)]


async def recover(conn: Any, owner: str | None, dead_after: float, me: str) -> list[str]:
    """The channel of each lease taken back: `owner`'s, or (None) every dead owner's."""
    if owner is not None:
        rows = await conn.fetch(RECOVER_OWNER, owner)
    else:
        rows = await conn.fetch(RECOVER_DEAD, dead_after, me)
    return [row[0] for row in rows]
