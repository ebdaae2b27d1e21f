"""The switches (maintenance, stopped channels), their version number, and the channels' shared
states (cool-down, misconfigured) in the SQLite Store. Statements run on a connection the
Store hands in: the writer's inside its transaction, or the reader's."""

from __future__ import annotations

import sqlite3

from notifierd.store.base import ChannelStateRecord, Keep

#: `meta` row of the number that moves with every change of a flag (schema migration 4).
FLAGS_VERSION = "flags_version"


def get_flags(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, value FROM flags").fetchall())


def set_flag(conn: sqlite3.Connection, name: str, value: str | None) -> None:
    """Set or remove a flag; the version moves only when the flag changed."""
    if value is None:
        cursor = conn.execute("DELETE FROM flags WHERE name = ?", (name,))
    else:
        cursor = conn.execute(
            "INSERT INTO flags (name, value) VALUES (?, ?) ON CONFLICT (name)"
            " DO UPDATE SET value = excluded.value WHERE value != excluded.value",
            (name, value),
        )
    if cursor.rowcount > 0:
        conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = ?", (FLAGS_VERSION,)
        )


def flags_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (FLAGS_VERSION,)).fetchone()
    return int(row[0])


def set_channel_state(
    conn: sqlite3.Connection,
    channel: str,
    cooldown_until: float | Keep | None,
    misconfigured: str | Keep | None,
) -> None:
    old = conn.execute(
        "SELECT cooldown_until, misconfigured FROM channel_states WHERE channel = ?", (channel,)
    ).fetchone()
    current = ChannelStateRecord(*old) if old is not None else ChannelStateRecord()
    until = current.cooldown_until if isinstance(cooldown_until, Keep) else cooldown_until
    error = current.misconfigured if isinstance(misconfigured, Keep) else misconfigured
    if until is None and error is None:
        conn.execute("DELETE FROM channel_states WHERE channel = ?", (channel,))
        return
    conn.execute(
        "INSERT INTO channel_states (channel, cooldown_until, misconfigured) VALUES (?, ?, ?)"
        " ON CONFLICT (channel) DO UPDATE SET cooldown_until = excluded.cooldown_until,"
        " misconfigured = excluded.misconfigured",
        (channel, until, error),
    )


def channel_states(conn: sqlite3.Connection) -> dict[str, ChannelStateRecord]:
    return {
        channel: ChannelStateRecord(until, error)
        for channel, until, error in conn.execute(
            "SELECT channel, cooldown_until, misconfigured FROM channel_states"
        )
    }
