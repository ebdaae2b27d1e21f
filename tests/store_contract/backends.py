"""The backends the Store contract runs against: one `pytest.param` each in `BACKENDS`.

A backend is an async context manager factory: given a fresh temporary directory and the
test's request (for the fixtures it needs), it yields a `Backend`, whose `store(owner)` makes a
new Store (not opened) on the one database of this test; several Stores made by one Backend
share that data, as several hosts share a cluster's database. On exit, the Backend drops what
it made.

PostgreSQL: a fresh database on the tests' server (`tests.postgres`: 127.0.0.1:5432, or one
the tests start), dropped on exit. Never skipped: without a server the tests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from notifierd.store import Store, open_store
from notifierd.store.factory import default_store_url
from tests.postgres import create_database, drop_database


class UrlBackend:
    """Stores made by `open_store` from one URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def shared(self) -> bool:
        """Whether several hosts may use the database at once (SQLite: one, the state lock)."""
        return not self.url.startswith("sqlite:")

    def store(self, owner: str | None = None) -> Store:
        return open_store(self.url, owner=owner)


@contextlib.asynccontextmanager
async def sqlite_backend(
    directory: Path, _request: pytest.FixtureRequest
) -> AsyncIterator[UrlBackend]:
    yield UrlBackend(default_store_url(directory / "state"))


@contextlib.asynccontextmanager
async def postgresql_backend(
    _directory: Path, request: pytest.FixtureRequest
) -> AsyncIterator[UrlBackend]:
    admin: str = request.getfixturevalue("postgres_admin_url")
    url = await asyncio.to_thread(create_database, admin)
    try:
        yield UrlBackend(url)
    finally:
        await asyncio.to_thread(drop_database, admin, url)


BackendFactory = Callable[[Path, pytest.FixtureRequest], AbstractAsyncContextManager[UrlBackend]]

BACKENDS: list[Any] = [
    pytest.param(sqlite_backend, id="sqlite"),
    pytest.param(postgresql_backend, id="postgresql"),
]
