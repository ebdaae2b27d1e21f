"""Fixtures of the Store contract: `backend` (parametrised over `backends.BACKENDS`), and
`store`, an open Store of owner `OWNER` on the backend's database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notifierd.store import Store
from tests.store_contract.backends import BACKENDS, BackendFactory, UrlBackend
from tests.store_contract.helpers import OWNER


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UrlBackend]:
    factory: BackendFactory = request.param
    async with factory(tmp_path, request) as made:
        yield made


@pytest.fixture
async def store(backend: UrlBackend) -> AsyncIterator[Store]:
    async with backend.store(OWNER) as opened:
        yield opened
