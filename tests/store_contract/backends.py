"""The backends the Store contract runs against: one `pytest.param` each in `BACKENDS`.

A backend is an async context manager factory: given a fresh temporary directory, it yields a
`Backend`, whose `store(owner)` makes a new Store (not opened) on the one database of this
test; several Stores made by one Backend share that data, as several hosts share a cluster's
database. On exit, the Backend drops what it made.

To run the contract against another backend (PostgreSQL, DESIGN §9): write a factory like
`sqlite_backend` that creates an empty database (for PostgreSQL: `CREATE DATABASE` a unique
name on the test server, its URL passed to `open_store`), yields a `UrlBackend` on its URL,
and drops the database on exit; then add one entry to `BACKENDS`, e.g.

    pytest.param(postgresql_backend, id="postgresql", marks=requires_postgresql)

where `requires_postgresql` skips the param with a reason when no server answers (never
silently). Nothing else changes: every test of the suite then runs against both.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from notifierd.store import Store, open_store
from notifierd.store.factory import default_store_url


class UrlBackend:
    """Stores made by `open_store` from one URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def store(self, owner: str | None = None) -> Store:
        return open_store(self.url, owner=owner)


@contextlib.asynccontextmanager
async def sqlite_backend(directory: Path) -> AsyncIterator[UrlBackend]:
    yield UrlBackend(default_store_url(directory / "state"))


BackendFactory = Callable[[Path], AbstractAsyncContextManager[UrlBackend]]

BACKENDS: list[Any] = [
    pytest.param(sqlite_backend, id="sqlite"),
]
