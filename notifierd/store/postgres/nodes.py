"""Hosts sharing the database (DESIGN §9, "Liveness"): each heartbeats its `nodes` row on the
database's clock; a reaper on every host declares a host dead once its heartbeat is older than
`dead_after`, and requeues its leases **in the same statement** that deletes its row, so there
is no moment where a host is gone but its deliveries are still held (procrastinate #1518).
Leases of an owner with no row at all (a host that stopped cleanly and left some, one that was
reaped before) go back too. Attempts stay counted: a message that kills hosts still ends DEAD.

A host whose heartbeat finds its row gone was declared dead: its leases are someone else's now
(their late outcomes are ignored by the token fence); it registers again under a new node id.
Lease expiry stays the backstop for a worker that hangs on a live host.
"""

from __future__ import annotations

from typing import Any

#: The database clock as the Store's times are: seconds since the epoch.
DB_NOW = "extract(epoch FROM now())::float8"

REGISTER = """
INSERT INTO nodes (node_id, runtime) VALUES ($1, $2::jsonb)
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


async def register(conn: Any, node_id: str, runtime: str = "{}") -> None:
    await conn.execute(REGISTER, node_id, runtime)


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
