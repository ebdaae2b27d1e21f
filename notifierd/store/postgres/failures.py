"""What the driver raises, turned into the Store's errors: a StoreError that names the database
(its URL without the password) and says what went wrong; never the driver's own exception."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from notifierd.errors import StoreError
from notifierd.store.factory import url_without_password

T = TypeVar("T")

#: Errors that say the session or the server is gone (or never came): nothing in them is the
#: fault of the data, and the operation may go through once the database is back.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,
    # The driver's own state of a session broken in the middle of an operation ("cannot
    # switch to state ...; another operation is in progress"), seen while a server shuts down.
    asyncpg.InternalClientError,
)
#: Errors PostgreSQL raises between concurrent transactions; trying again is the remedy.
_CONFLICTS: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)
CONFLICT_RETRIES = 3
#: What the driver raises at all: anything else is a bug, and goes up as it is.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresError,
)


def is_data_error(exc: BaseException) -> bool:
    """The data of one job was refused (text PostgreSQL cannot hold, a constraint): the fault
    of that job alone."""
    return isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError)


def unreachable(exc: StoreError) -> bool:
    """Whether the StoreError says the database could not be reached (not that it refused
    the operation, nor that the statement ran out of time there)."""
    cause = exc.__cause__
    return isinstance(cause, CONNECTION_ERRORS) and not isinstance(
        cause, asyncpg.QueryCanceledError
    )


def store_error(url: str, doing: str, exc: BaseException) -> StoreError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        detail = "no answer in time"
    error = StoreError(f"could not {doing} the database {url_without_password(url)}: {detail}")
    error.__cause__ = exc  # also when it is not raised here (intake hands it to each caller)
    return error


async def retrying(url: str, doing: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation` (one transaction), again after a deadlock or a serialization failure;
    any driver error ends as a StoreError."""
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            return await operation()
        except _CONFLICTS as exc:
            if attempt == CONFLICT_RETRIES:
                raise store_error(url, doing, exc) from exc
        except DRIVER_ERRORS as exc:
            raise store_error(url, doing, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover
