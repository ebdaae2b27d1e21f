"""The PostgreSQL backend of the Store: several hosts on one queue (DESIGN §9).

Its driver is an optional extra (`pip install 'notifierd[postgresql]'`): nothing here imports
it until a PostgresStore is made (`open_postgres`), so the embedded SQLite default needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifierd.store.base import DEFAULT_DEAD_AFTER
from notifierd.store.postgres.driver import DriverMissing, require_driver

if TYPE_CHECKING:
    from notifierd.store.postgres.store import PostgresStore

__all__ = ["DriverMissing", "postgres_store"]


def postgres_store(
    url: str, *, owner: str | None = None, dead_after: float = DEFAULT_DEAD_AFTER
) -> PostgresStore:
    """A PostgresStore for `url` (not opened yet). Raises DriverMissing, saying how to install
    it, when the driver is missing."""
    require_driver()
    from notifierd.store.postgres.store import PostgresStore  # noqa: PLC0415 - needs the driver

    return PostgresStore(url, owner=owner, dead_after=dead_after)
