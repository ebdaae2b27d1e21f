"""This host's hold on a rate key (DESIGN §9, "Rate keys"): hosts sharing a Store dispatch a
key one at a time.

A `KeyLease` asks the Store for the key each `RENEW_SECONDS` until it gets it, then renews it
as often, saving the group's pacing state with each renewal (and with the release at
shutdown), so that a successor goes on without a burst. It counts itself held until
`LEASE_SECONDS` after the start of its last successful request, on this host's monotonic
clock: that ends no later than the lease the Store recorded, so a host cut off from the
Store stops starting sends before another may take the key over. A renewal the Store refuses
(the epoch moved: the key changed hands) ends the hold at once.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from notifierd.channels.rate_groups import RateGroup
from notifierd.errors import StoreError
from notifierd.store import Store

log = structlog.get_logger("notifierd.channel")

LEASE_SECONDS = 5.0
RENEW_SECONDS = 1.0


class KeyLease:
    def __init__(
        self,
        store: Store,
        group: RateGroup,
        *,
        lease_seconds: float = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        assert group.key is not None
        self.key: str = group.key
        self._store = store
        self._group = group
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self.epoch: int | None = None
        self._valid_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(rate_key=self.key)

    @property
    def held(self) -> bool:
        """Whether this host may start sends of the key now."""
        return self.epoch is not None and time.monotonic() < self._valid_until

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"rate-key:{self.key}"
        )

    async def close(self) -> None:
        """Stop renewing and let the key go with the last pacing state."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        epoch, self.epoch = self.epoch, None
        if epoch is not None:
            try:
                checkpoint = self._group.checkpoint(self._store.now())
                await self._store.release_rate_key(self.key, epoch, checkpoint)
            except StoreError as exc:
                self._log.warning("rate_key.release_failed", error=str(exc))

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except StoreError as exc:
                self._log.warning("rate_key.store_failed", error=str(exc), held=self.held)
            await asyncio.sleep(self._renew_seconds)

    async def step(self) -> None:
        """Take the key if it is free, or renew it if it is this host's."""
        started = time.monotonic()
        if self.epoch is None:
            lease = await self._store.acquire_rate_key(self.key, self._lease_seconds)
            if lease is None:
                return
            self._group.restore(lease.checkpoint, self._store.now())
            self.epoch, self._valid_until = lease.epoch, started + self._lease_seconds
            self._log.info("rate_key.acquired", epoch=lease.epoch, owner=self._store.owner)
            self._group.wake_all()
            return
        checkpoint = self._group.checkpoint(self._store.now())
        if await self._store.renew_rate_key(self.key, self.epoch, checkpoint, self._lease_seconds):
            lapsed = not self.held
            self._valid_until = started + self._lease_seconds
            if lapsed:  # the Store was out of reach past the lease: the dispatchers wait
                self._group.wake_all()
            return
        self._log.warning("rate_key.lost", epoch=self.epoch, owner=self._store.owner)
        self.epoch = None
