"""The switches (maintenance, stopped channels), their version number, and the channels' shared
states (a remote's Retry-After cool-down, the misconfigured state) on PostgreSQL: rows every
host reads, so that a `pause` on one host holds on all of them."""

from __future__ import annotations

from typing import Any

from notifierd.store.base import ChannelStateRecord, Keep

# The version moves only when a flag changed (as the SQLite Store's does).
SET_FLAG = """
INSERT INTO flags (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value
    WHERE flags.value IS DISTINCT FROM excluded.value
"""
BUMP = "UPDATE flags_version SET version = version + 1"

SET_CHANNEL_STATE = """
INSERT INTO channel_state AS s (channel, cooldown_until, misconfigured, updated_at)
VALUES ($1, $2, $3, extract(epoch FROM now())::float8)
    ON CONFLICT (channel) DO UPDATE SET
       cooldown_until = CASE WHEN $4 THEN s.cooldown_until ELSE excluded.cooldown_until END,
       misconfigured = CASE WHEN $5 THEN s.misconfigured ELSE excluded.misconfigured END,
       updated_at = excluded.updated_at
"""
DROP_EMPTY = """
DELETE FROM channel_state
 WHERE channel = $1 AND cooldown_until IS NULL AND misconfigured IS NULL
"""


async def get_flags(conn: Any) -> dict[str, str]:
    return {row[0]: row[1] for row in await conn.fetch("SELECT name, value FROM flags")}


async def set_flag(conn: Any, name: str, value: str | None) -> None:
    """Inside a transaction."""
    if value is None:
        status = await conn.execute("DELETE FROM flags WHERE name = $1", name)
    else:
        status = await conn.execute(SET_FLAG, name, value)
    if not status.endswith(" 0"):
        await conn.execute(BUMP)


async def flags_version(conn: Any) -> int:
    return int(await conn.fetchval("SELECT version FROM flags_version"))


async def set_channel_state(
    conn: Any,
    channel: str,
    cooldown_until: float | Keep | None,
    misconfigured: str | Keep | None,
) -> None:
    """Inside a transaction: a part given as `Keep` stays; a channel left with neither part
    has no row."""
    keep_cooldown = isinstance(cooldown_until, Keep)
    keep_error = isinstance(misconfigured, Keep)
    await conn.execute(
        SET_CHANNEL_STATE,
        channel,
        None if isinstance(cooldown_until, Keep) else cooldown_until,
        None if isinstance(misconfigured, Keep) else misconfigured,
        keep_cooldown,
        keep_error,
    )
    await conn.execute(DROP_EMPTY, channel)


async def channel_states(conn: Any) -> dict[str, ChannelStateRecord]:
    rows = await conn.fetch("SELECT channel, cooldown_until, misconfigured FROM channel_state")
    return {row[0]: ChannelStateRecord(row[1], row[2]) for row in rows}
