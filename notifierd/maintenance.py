"""The service's switches (SPEC "service state", DESIGN §5): maintenance (`pause` / `resume`)
and the channels an operator stopped (`stop` / `start CHANNEL`).

One object holds them. Each change is written to the Store's flags before it is acted on, so
that a restart keeps it, and is then applied to the channels: paused, no channel's workers
run; a stopped channel's workers do not run until it is started again, whatever maintenance
does (a stop outlives a pause). A change another writer made to the flags (a second daemon on
a shared Store) is applied by `refresh`, which the daemon calls each second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

import structlog

from notifierd.store import Store

log = structlog.get_logger("notifierd")

PAUSED_FLAG = "paused"
STOPPED_FLAG = "stopped:"  # + channel name
#: The log lines of a change found in the Store, not made by a command of this daemon's.
BY_STORE = {"by": "another writer of the store"}


class Switchable(Protocol):
    """What the switches act on: the channel registry."""

    @property
    def names(self) -> Collection[str]: ...

    def activate(self, name: str) -> None: ...

    def deactivate(self, name: str) -> None: ...

    def clear_fatal(self, name: str) -> None: ...


class Maintenance:
    """Maintenance and the stopped channels, persisted in `store`, applied to `channels`.

    `on_pause_change` is called after the service was paused or resumed (the daemon tells
    systemd its new status line)."""

    def __init__(
        self,
        store: Store,
        channels: Switchable,
        on_pause_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._channels = channels
        self._on_pause_change = on_pause_change
        self.paused = False
        #: The daemon is stopping: nothing is activated any more, and the API answers 503.
        self.stopping = False
        self._stopped: set[str] = set()
        self._version: int | None = None
        # One change at a time: a flag's write and its effect are never interleaved with
        # another change's, nor with `refresh`.
        self._lock = asyncio.Lock()

    @property
    def unavailable(self) -> bool:
        """True in maintenance and while stopping: the API answers 503."""
        return self.paused or self.stopping

    def stopped(self, name: str) -> bool:
        return name in self._stopped

    @property
    def stopped_channels(self) -> frozenset[str]:
        """Every channel a stop flag names, configured or not."""
        return frozenset(self._stopped)

    def may_run(self, name: str) -> bool:
        """Whether the channel's workers may run now."""
        return not self.paused and not self.stopping and name not in self._stopped

    async def load(self) -> None:
        """Read the switches at start-up, before any channel is activated."""
        # The version first: a change made between the two reads is seen at the next refresh.
        self._version = await self._store.flags_version()
        self.paused, self._stopped = _switches(await self._store.get_flags())

    def begin_stop(self) -> None:
        """The daemon stops: from now on nothing is activated and intake answers 503."""
        self.stopping = True

    # -- the operator's commands: stored, then applied ---------------------------------------

    async def pause(self) -> None:
        async with self._lock:
            await self._store.set_flag(PAUSED_FLAG, "1")
            self._pause()

    async def resume(self) -> None:
        async with self._lock:
            await self._store.set_flag(PAUSED_FLAG, None)
            self._resume()

    async def stop_channel(self, name: str) -> None:
        """Deactivate a channel until `start_channel`, across restarts. It still takes jobs."""
        async with self._lock:
            await self._store.set_flag(STOPPED_FLAG + name, "1")
            self._stop(name)

    async def start_channel(self, name: str) -> None:
        """Undo `stop_channel`, and clear a FATAL state; the workers start unless paused."""
        async with self._lock:
            await self._store.set_flag(STOPPED_FLAG + name, None)
            self._start(name)

    # -- changes another writer made ------------------------------------------------------------

    async def refresh(self) -> bool:
        """Apply what changed in the Store's flags since they were last read here (another
        daemon sharing the Store, or a tool writing to it). Cheap when nothing changed: one
        read of the flags' version. True if something was applied."""
        async with self._lock:
            version = await self._store.flags_version()
            if version == self._version:
                return False
            flags = await self._store.get_flags()
            self._version = version
            paused, stopped = _switches(flags)
            added, removed = stopped - self._stopped, self._stopped - stopped
            for name in sorted(added):
                self._stop(name, **BY_STORE)
            for name in sorted(removed):
                self._start(name, **BY_STORE)
            moved = paused != self.paused
            if moved:
                (self._pause if paused else self._resume)(**BY_STORE)
            return bool(added or removed or moved)

    # -- applying a change --------------------------------------------------------------------

    def _pause(self, **fields: str) -> None:
        self.paused = True
        for name in self._channels.names:
            self._channels.deactivate(name)
        self._on_pause_change()
        log.warning("notifierd.paused", **fields)

    def _resume(self, **fields: str) -> None:
        self.paused = False
        for name in self._channels.names:
            if name not in self._stopped and not self.stopping:
                # Also clears a FATAL state: resuming is the operator's "try again".
                self._channels.activate(name)
        self._on_pause_change()
        log.warning("notifierd.resumed", **fields)

    def _stop(self, name: str, **fields: str) -> None:
        self._stopped.add(name)
        if name in self._channels.names:  # a flag from elsewhere may name any channel
            self._channels.deactivate(name)
        log.warning("channel.stopped", channel=name, until="notifierctl start", **fields)

    def _start(self, name: str, **fields: str) -> None:
        self._stopped.discard(name)
        if name in self._channels.names:
            self._channels.clear_fatal(name)
            if not self.paused and not self.stopping:
                self._channels.activate(name)
        log.warning("channel.started", channel=name, **fields)


def _switches(flags: Mapping[str, str]) -> tuple[bool, set[str]]:
    """(paused, the stopped channels) as the flags say."""
    stopped = {name.removeprefix(STOPPED_FLAG) for name in flags if name.startswith(STOPPED_FLAG)}
    return PAUSED_FLAG in flags, stopped
