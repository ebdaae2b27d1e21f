"""Wake-ups across hosts: after an intake batch commits, the local dispatchers of its channels
are woken at once, and the other hosts through `NOTIFY notifierd_wake` - sent in its own
statement after the commit, never inside the intake transaction (a NOTIFY takes a global lock
at commit: one per intake transaction cut inserts from 3,073/s to 1,252/s), and at most once
per `INTERVAL` per channel (a last one follows the interval, so no wake-up is lost). Every
dispatcher still polls as a backstop for a notification lost with a dropped connection.

The payload is "<channel> <owner>": a host ignores its own notifications (it woke its
dispatchers already). LISTEN holds a session: it needs a direct connection to PostgreSQL,
not one through a pooler in transaction mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from notifierd.errors import StoreError
from notifierd.store.postgres.driver import connect
from notifierd.store.postgres.failures import DRIVER_ERRORS

log = structlog.get_logger("notifierd.store")

CHANNEL = "notifierd_wake"
#: At most one NOTIFY per channel per this many seconds.
INTERVAL = 0.05
RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)

#: A NOTIFY that fails (the database away, the Store closing) is only logged.
_NOTIFY_ERRORS: tuple[type[BaseException], ...] = (StoreError, *DRIVER_ERRORS)
NOTIFY = f"SELECT pg_notify('{CHANNEL}', c || ' ' || $2) FROM unnest($1::text[]) AS c"


class Wakeups:
    def __init__(
        self,
        url: str,
        owner: Callable[[], str],
        acquire: Callable[[], Any],
        wake: Callable[[set[str]], None],
    ) -> None:
        self._url = url
        self._owner = owner
        self._acquire = acquire
        self._wake = wake
        #: Channel -> monotonic time of its last NOTIFY.
        self._sent: dict[str, float] = {}
        #: Channels whose NOTIFY waits for the end of their interval, and its timer.
        self._held: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def committed(self, channels: set[str]) -> None:
        """New work of these channels committed (an intake batch, a retry, a recovery)."""
        self._wake(channels)
        now = time.monotonic()
        due = []
        for channel in channels:
            if channel in self._held:
                continue
            last = self._sent.get(channel)
            if last is None or now - last >= INTERVAL:
                self._sent[channel] = now
                due.append(channel)
            else:
                self._held[channel] = asyncio.get_running_loop().call_later(
                    last + INTERVAL - now, self._release, channel
                )
        if due:
            self._spawn(self._notify(due))

    def _release(self, channel: str) -> None:
        self._held.pop(channel, None)
        self._sent[channel] = time.monotonic()
        self._spawn(self._notify([channel]))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, channels: list[str]) -> None:
        try:
            async with self._acquire() as conn:
                await conn.execute(NOTIFY, channels, self._owner())
        except _NOTIFY_ERRORS as exc:
            # The other hosts poll: a lost wake-up only delays them.
            log.warning("store.notify_failed", error=str(exc))

    # -- listening --------------------------------------------------------------------------

    async def start(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def wait_listening(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), seconds)
        return self._listening.is_set()

    async def stop(self) -> None:
        for timer in self._held.values():
            timer.cancel()
        self._held.clear()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        failures = 0
        while True:
            conn = None
            try:
                conn = await connect(self._url)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._received)
                self._listening.set()
                failures = 0
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again, never give up
                log.warning("store.listen_failed", error=str(exc))
            finally:
                self._listening.clear()
                if conn is not None and not conn.is_closed():
                    await conn.close(timeout=1)
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    def _received(self, _conn: Any, _pid: int, _name: str, payload: str) -> None:
        channel, _, owner = payload.partition(" ")
        if owner != self._owner():
            self._wake({channel})
