"""This host's life in the cluster (`nodes.py`): it registers at open, heartbeats its row every
`dead_after / 5` seconds (which also syncs the Store's clock), reaps dead hosts every second
or so, and leaves at close so others need not wait for `dead_after`.

`fence_deadline` is the monotonic time until which this host may still start a send: half of
`dead_after` after its last heartbeat went through. Past it, another host may already have
declared it dead and taken its deliveries. A heartbeat that finds the row gone means exactly
that: the host registers again under a new node id, and its old leases are someone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from notifierd.errors import StoreError
from notifierd.store.postgres import nodes
from notifierd.store.postgres.clock import DatabaseClock

log = structlog.get_logger("notifierd.store")

T = TypeVar("T")
Run = Callable[[str, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
#: How often the reaper looks, at most (with dead_after / 5 when shorter).
REAP_SECONDS = 1.0


class Liveness:
    def __init__(
        self,
        *,
        run: Run,
        clock: DatabaseClock,
        dead_after: float,
        get_owner: Callable[[], str],
        set_owner: Callable[[str], None],
        new_owner: Callable[[], str],
        requeued: Callable[[set[str]], None],
    ) -> None:
        self._run = run
        self._clock = clock
        self.dead_after = dead_after
        self._get_owner = get_owner
        self._set_owner = set_owner
        self._new_owner = new_owner
        self._requeued = requeued
        self.heartbeat_seconds = dead_after / 5
        self.reap_seconds = min(REAP_SECONDS, dead_after / 5)
        self.fence_deadline = 0.0
        #: What the node's row says, kept here so that a new registration says it too.
        self.runtime = "{}"
        self.draining = False
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self.runtime, self.draining = "{}", False  # a node starts afresh
        await self._register(self._get_owner())
        self.fence_deadline = time.monotonic() + self.dead_after / 2
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError):
            await self._run("leave", lambda conn: nodes.leave(conn, self._get_owner()))

    async def _loop(self) -> None:
        jitter = random.Random()
        next_beat = time.monotonic() + self.heartbeat_seconds
        while True:
            await asyncio.sleep(self.reap_seconds * jitter.uniform(0.8, 1.2))
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_seconds
                    await self.beat()
                await self.reap()
            except StoreError as exc:
                if not self._failing:
                    log.warning("store.heartbeat_failed", error=str(exc))
                self._failing = True
            else:
                if self._failing:
                    log.info("store.heartbeat_resumed", owner=self._get_owner())
                self._failing = False

    async def beat(self) -> None:
        owner = self._get_owner()

        async def run(conn: Any) -> tuple[float | None, float, float]:
            before = time.monotonic()
            server = await nodes.heartbeat(conn, owner)
            return server, before, time.monotonic()

        server, before, after = await self._run("heartbeat in", run)
        if server is None:
            fresh = self._new_owner()
            log.warning("store.declared_dead", owner=owner, new_owner=fresh)
            self._set_owner(fresh)
            await self._register(fresh)
            self.fence_deadline = time.monotonic() + self.dead_after / 2
            return
        self._clock.record(server, before, after)
        self.fence_deadline = before + self.dead_after / 2

    async def _register(self, owner: str) -> None:
        await self._run(
            "register in", lambda conn: nodes.register(conn, owner, self.runtime, self.draining)
        )

    async def reap(self) -> None:
        requeued = await self._run("reap dead hosts in", lambda c: nodes.reap(c, self.dead_after))
        if requeued:
            owners = sorted({owner for _, owner in requeued})
            log.warning("store.hosts_reaped", owners=owners, requeued=len(requeued))
            self._requeued({channel for channel, _ in requeued})
