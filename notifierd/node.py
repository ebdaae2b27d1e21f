"""This host as the others sharing its Store see it (DESIGN §9): what it publishes on its node
(its pid, its version, its channels' states), kept current by a background task, and the hosts
as `notifierctl status` and `nodes` show them.

`notifierctl drain` makes this host claim nothing new while it finishes what it holds (a
rolling upgrade: drain, wait until `nodes` shows it holding nothing, stop, upgrade, start: a
started host does not drain); `undrain` ends it. The Store keeps the state on the host's
node, so that every host shows it and the claim itself obeys it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import structlog

from notifierd import __version__
from notifierd.errors import StoreError
from notifierd.store import NodeRecord, Store

log = structlog.get_logger("notifierd")

#: How soon a change of this host's channels shows on its node.
PUBLISH_SECONDS = 1.0


def runtime(channel_states: dict[str, str]) -> dict[str, Any]:
    """What this host publishes about itself, with its channels' states."""
    return {"pid": os.getpid(), "version": __version__, "channels": channel_states}


async def publish_runtime(
    store: Store, current: Callable[[], dict[str, Any]], seconds: float = PUBLISH_SECONDS
) -> None:
    """Publish `current()` whenever it changed (checked each `seconds`)."""
    shown: dict[str, Any] | None = None
    failing = False
    while True:
        now = current()
        if now != shown:
            try:
                await store.publish(now)
            except StoreError as exc:
                if not failing:  # once, not at every poll while the Store is away
                    log.warning("node.publish_failed", error=str(exc))
                failing = True
            else:
                shown, failing = now, False
        await asyncio.sleep(seconds)


def node_rows(nodes: list[NodeRecord], me: str, mine: dict[str, Any]) -> list[dict[str, Any]]:
    """The hosts for the control socket: `this_host` marks this one, whose runtime is `mine`
    (live, not the last published)."""
    rows = []
    for node in nodes:
        row = asdict(node)
        row["this_host"] = node.node_id == me
        if row["this_host"]:
            row["runtime"] = mine
        rows.append(row)
    return rows
