"""The PostgreSQL Store's sessions: the pool (`driver.py` sets each session up), the one way an
operation runs on it, and whether the database answers.

While the database does not answer, each operation would wait for a connection attempt of its
own: refused at once when the server is down, but up to the connect timeout when the network
is cut, with every HTTP request, dispatcher and heartbeat waiting in its own. So the first
failure to reach it starts a probe at once; when the probe fails too, the database is taken
as away: operations fail at once with `StoreUnreachable` (nothing is tried, nothing can be
taken as stored), the log says so once, and the probe tries again with backoff until the
database answers, after which operations go through again. A single lost session (the server
ended an idle one) costs nothing: the probe finds the database there at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from notifierd.errors import StoreError, StoreUnreachable
from notifierd.store.factory import url_without_password
from notifierd.store.postgres.driver import create_pool
from notifierd.store.postgres.failures import DRIVER_ERRORS, retrying, unreachable

log = structlog.get_logger("notifierd.store")

T = TypeVar("T")
CLOSE_SECONDS = 5.0
#: The probe's waits between tries while the database is away.
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 5.0)
PROBE_SECONDS = 5.0  # a probe that gets no answer in this long failed
PROBE = "SELECT 1"
#: What a probe that did not reach the database raises.
_PROBE_FAILURES: tuple[type[BaseException], ...] = (StoreError, *DRIVER_ERRORS)


class Sessions:
    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self._size = size
        self._pool: Any = None
        self._probe: asyncio.Task[None] | None = None
        #: Monotonic time since which the database is known away; None: it is not.
        self._away_since: float | None = None
        #: The last failure to reach it, until an operation or the probe went through.
        self._failure: str | None = None

    async def open(self) -> None:
        self._pool = await create_pool(self.url, self._size)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_SECONDS)
            except TimeoutError:
                pool.terminate()

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def acquire(self) -> Any:
        if self._pool is None:
            raise StoreError("the store is closed")
        return self._pool.acquire()

    async def run(
        self,
        doing: str,
        operation: Callable[[Any], Awaitable[T]],
        *,
        transaction: bool = False,
        **options: Any,
    ) -> T:
        """`operation(conn)` on a pooled session, in a transaction if asked; a deadlock or a
        serialization failure is tried again, any other failure is a StoreError."""

        async def run() -> T:
            async with self.acquire() as conn:
                if not transaction:
                    return await operation(conn)
                async with conn.transaction(**options):
                    return await operation(conn)

        return await self.guarded(lambda: retrying(self.url, doing, run))

    async def guarded(self, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation()`, unless the database is known away; a failure to reach it is noted."""
        if self._away_since is not None:
            raise StoreUnreachable(
                f"the database {url_without_password(self.url)} does not answer"
                f" (for {time.monotonic() - self._away_since:.0f} s); trying again by itself"
            )
        try:
            result = await operation()
        except StoreError as exc:
            if unreachable(exc):
                self._failed()
            raise
        self._failure = None
        return result

    def unreachable(self) -> str | None:
        """Why the database cannot be reached now, or None (see `Store.unreachable`)."""
        if self._away_since is not None:
            return f"the database does not answer (for {time.monotonic() - self._away_since:.0f} s)"
        return self._failure

    def _failed(self) -> None:
        self._failure = "the database did not answer"
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probing())

    async def _probing(self) -> None:
        tries = 0
        while True:
            try:
                async with asyncio.timeout(PROBE_SECONDS), self.acquire() as conn:
                    await conn.fetchval(PROBE)
            except _PROBE_FAILURES as exc:
                if self._away_since is None:
                    self._away_since = time.monotonic()
                    log.warning(
                        "store.unreachable",
                        database=url_without_password(self.url),
                        error=str(exc) or type(exc).__name__,
                        then="every operation fails at once until it answers; tried again"
                        " with backoff",
                    )
                await asyncio.sleep(BACKOFF_SECONDS[min(tries, len(BACKOFF_SECONDS) - 1)])
                tries += 1
                continue
            if self._away_since is not None:
                away = time.monotonic() - self._away_since
                log.info(
                    "store.reachable",
                    database=url_without_password(self.url),
                    after_seconds=round(away, 1),
                )
            self._away_since = self._failure = None
            return
