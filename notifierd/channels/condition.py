"""What the remote's answers say about a whole channel rather than one delivery: how long it must
wait (a Retry-After, the probe schedule of a misconfigured channel), whether the remote refuses
its credentials, and the last error it gave.

The cool-down and the misconfigured state are kept in the Store (`Store.set_channel_state`), so
that a restart keeps them (and, with a Store shared by several hosts, every host sees them):
`restore` reads them back at start, `follow` applies each second what another host set. The
Store keeps times on its clock; the worker processes get the cool-down as a monotonic deadline
(`time.monotonic()`, one clock for every process of the host), which no step of the wall clock
moves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized

from notifierd.channels.probing import ProbeSchedule
from notifierd.store import ChannelStateRecord, Store


class ChannelCondition:
    """The cool-down, the misconfigured state and the last error of one channel.

    `cooldown` is shared with the channel's worker processes: a `time.monotonic()` deadline
    before which none of them starts a send (`processes.child`)."""

    def __init__(
        self,
        channel: str,
        store: Store,
        cooldown: Synchronized[float],
        first_probe: float,
        *,
        on_store_error: Callable[[Exception], None],
    ) -> None:
        self._channel = channel
        self._store = store
        self._cooldown = cooldown
        self._probes = ProbeSchedule(first_probe)
        self._on_store_error = on_store_error
        self._misconfigured: str | None = None
        #: The end of the cool-down on the Store's clock, as the Store is told it.
        self._until: float | None = None
        self.last_error: str | None = None
        self._dirty = False
        self._saving: asyncio.Task[None] | None = None
        #: A write of this host's state failed: the Store's record is older than ours.
        self._unsaved = False

    @property
    def misconfigured(self) -> str | None:
        """Why the remote refuses the channel (its error), while it does."""
        return self._misconfigured

    def cooling(self) -> float:
        """Seconds left of the cool-down (0: none)."""
        return max(0.0, self._cooldown.value - time.monotonic())

    def cool_down(self, until: float) -> None:
        """Send nothing before `until` (the Store's clock)."""
        deadline = time.monotonic() + (until - self._store.now())
        if deadline > self._cooldown.value:
            self._cooldown.value = deadline
            self._until = until
            self._changed()

    def cool_down_for(self, seconds: float) -> None:
        self.cool_down(self._store.now() + seconds)

    def works(self) -> None:
        """A delivery went through: the channel is not misconfigured (any more)."""
        self._probes.reset()
        if self._misconfigured is not None:
            self._misconfigured = None
            self._changed()

    def refused(self, error: str | None) -> float:
        """The remote refused the channel's credentials. Returns the seconds until the next
        probe."""
        if error != self._misconfigured:
            self._misconfigured = error
            self._changed()
        # Deliveries sent alongside the one that found the problem answer while the channel
        # already waits: only a probe's answer moves the schedule on.
        if self.cooling() <= 0:
            self.cool_down_for(self._probes.next_interval())
        return self.cooling()

    async def restore(self) -> None:
        """Take back what the Store kept of the channel (before a restart, or from another
        host)."""
        try:
            record = (await self._store.channel_states()).get(self._channel)
        except Exception as exc:
            self._on_store_error(exc)
            return
        if record is not None:
            self._adopt_cooldown(record)
            if self._misconfigured is None:
                self._misconfigured = record.misconfigured

    def follow(self, record: ChannelStateRecord | None) -> bool:
        """Apply the channel's state as the Store has it now (another host may have set it):
        a later cool-down holds this host's sends back too; the misconfigured state is taken,
        or dropped once another host's probe went through. Not while this host's own change
        is on its way to the Store (the record is older). True if the channel may send sooner
        than it thought (its dispatcher should look again)."""
        if self._saving is not None or self._unsaved:
            return False
        if record is not None:
            self._adopt_cooldown(record)
        misconfigured = None if record is None else record.misconfigured
        if misconfigured == self._misconfigured:
            return False
        self._misconfigured = misconfigured
        if misconfigured is None:
            self._probes.reset()
            return True
        return False

    def _adopt_cooldown(self, record: ChannelStateRecord) -> None:
        if record.cooldown_until is None:
            return
        deadline = time.monotonic() + (record.cooldown_until - self._store.now())
        if deadline > self._cooldown.value:
            self._cooldown.value = deadline
            self._until = record.cooldown_until

    async def close(self) -> None:
        """Wait until the Store has the latest state."""
        while self._saving is not None:
            await asyncio.wait([self._saving])

    def _changed(self) -> None:
        self._dirty = True
        if self._saving is None:
            self._saving = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        """Write the state until the Store has the latest one: one write at a time, so that
        an older state never lands after a newer."""
        try:
            while self._dirty:
                self._dirty = False
                until = self._until if self.cooling() > 0 else None
                await self._store.set_channel_state(
                    self._channel, cooldown_until=until, misconfigured=self._misconfigured
                )
            self._unsaved = False
        except Exception as exc:
            self._unsaved = True
            self._on_store_error(exc)
        finally:
            self._saving = None
