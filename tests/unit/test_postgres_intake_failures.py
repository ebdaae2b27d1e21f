"""The PostgreSQL intake when its batch's statement fails in a way the database did not report:
every job of the batch gets an answer - a StoreError for a session the driver found broken
mid-operation (seen while a server shut down under load: the HTTP request then waited for an
answer that never came), the exception itself for anything else - never a future left
pending."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from notifierd.errors import StoreError
from notifierd.store.base import NewJob
from notifierd.store.postgres.intake import Intake

URL = "postgresql://notifierd:s3cret@db.example/notifierd"


class Failing:
    """A session whose every statement raises `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def fetch(self, *_args: Any) -> list[Any]:
        raise self.error


def intake(error: BaseException) -> Intake:
    @contextlib.asynccontextmanager
    async def acquire() -> AsyncIterator[Failing]:
        yield Failing(error)

    return Intake(URL, acquire, lambda _channels: None)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        ),
    ],
)
async def test_a_broken_session_fails_every_job_of_the_batch_with_a_store_error(
    error: BaseException,
) -> None:
    batcher = intake(error)
    futures = [batcher.add(NewJob("c", f"m{i}", [""], 0, 60), 1.0) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
    for result in results:
        assert isinstance(result, StoreError)
        assert "could not write to the database postgresql://notifierd:***@db.example" in str(
            result
        )
        assert "s3cret" not in str(result)
    await asyncio.wait_for(batcher.drain(), 5)


async def test_a_bug_in_the_batch_still_answers_every_job() -> None:
    batcher = intake(RuntimeError("a bug"))
    futures = [batcher.add(NewJob("c", f"m{i}", [""], 0, 60), 1.0) for i in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
    assert [type(result) for result in results] == [RuntimeError, RuntimeError]
    await asyncio.wait_for(batcher.drain(), 5)
