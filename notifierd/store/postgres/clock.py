"""The database's clock, read on this host without a round trip.

Every host of a cluster must agree on time (due times, leases, TTLs), and no host's clock is
trusted for it: the Store's `now()` is the database server's clock, measured at each sync
(`clock_timestamp()` against this host's monotonic clock, taken halfway through the round
trip) and carried forward by the monotonic clock in between. A host whose wall clock is
minutes off still leases and schedules on the database's time.
"""

from __future__ import annotations

import time
from typing import Any

CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8"


class DatabaseClock:
    def __init__(self) -> None:
        #: Database time minus this host's monotonic time; None until the first sync.
        self._offset: float | None = None
        #: Half the round trip of the last sync: how far off `now()` may be.
        self.uncertainty = 0.0

    @property
    def synced(self) -> bool:
        return self._offset is not None

    async def sync(self, conn: Any) -> None:
        before = time.monotonic()
        server = float(await conn.fetchval(CLOCK))
        self.record(server, before, time.monotonic())

    def record(self, server: float, before: float, after: float) -> None:
        """The database's clock read as `server` between the monotonic `before` and `after`."""
        self._offset = server - (before + after) / 2
        self.uncertainty = (after - before) / 2

    def now(self) -> float:
        if self._offset is None:
            raise RuntimeError("the database clock was never read")
        return time.monotonic() + self._offset
