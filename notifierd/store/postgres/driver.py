"""The PostgreSQL driver (asyncpg, the optional extra `postgresql`) and the sessions it opens.

Every session of the Store is set up for a queue: `plan_cache_mode = force_custom_plan`, since
asyncpg prepares each statement and PostgreSQL would otherwise switch to a generic plan after
five executions, one costed for the queue as it was then (measured: a claim of 10 over 60,000
rows took 139 ms on a plan made while the table was empty); and time limits on statements and
on idle transactions, since one transaction left open pins the xmin horizon of the whole
database, and a queue table then bloats and slows down within a minute
(docs/performance.md, reference cluster-postgresql.md P6, P7).
"""

from __future__ import annotations

from typing import Any

from notifierd.errors import StoreError, StoreUnusable
from notifierd.store.factory import url_without_password

INSTALL_HINT = "pip install 'notifierd[postgresql]'"
CONNECT_TIMEOUT = 10.0
#: Server settings of every session of the Store.
SESSION_SETTINGS = {
    "application_name": "notifierd",
    "plan_cache_mode": "force_custom_plan",
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "30s",
    "lock_timeout": "10s",
}
#: Client-side bound of one command: above statement_timeout, for a server that stops
#: answering altogether (a network partition leaves the socket open).
COMMAND_TIMEOUT = 40.0


class DriverMissing(StoreUnusable):
    """The PostgreSQL driver is not installed."""


def require_driver() -> Any:
    """The asyncpg module, or DriverMissing saying how to install it."""
    try:
        import asyncpg  # noqa: PLC0415 - an optional dependency
    except ImportError as exc:
        raise DriverMissing(
            f"a PostgreSQL store needs its driver, which is not installed: {INSTALL_HINT}"
        ) from exc
    return asyncpg


def connection_failure(url: str, exc: BaseException) -> StoreError:
    """A StoreError naming the URL (without its password) and what went wrong."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        detail = f"no answer within {CONNECT_TIMEOUT:g} s"
    return StoreError(f"cannot connect to the database {url_without_password(url)}: {detail}")


async def connect(url: str, **options: Any) -> Any:
    """One session (the migrations, the LISTEN connection), set up as the pool's are."""
    asyncpg = require_driver()
    try:
        return await asyncpg.connect(
            url,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings=SESSION_SETTINGS,
            **options,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise connection_failure(url, exc) from exc
    except ValueError as exc:  # a URL asyncpg cannot parse
        raise StoreError(f"invalid database URL {url_without_password(url)}: {exc}") from exc


async def create_pool(url: str, size: int) -> Any:
    asyncpg = require_driver()
    try:
        return await asyncpg.create_pool(
            url,
            # No floor: asyncpg would keep reconnecting it (and logging a traceback each time)
            # while the database is away; the heartbeat keeps a session in use anyway.
            min_size=0,
            max_size=size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings=SESSION_SETTINGS,
            # Idle sessions are closed after a while: a host with no traffic holds one.
            max_inactive_connection_lifetime=60.0,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise connection_failure(url, exc) from exc
    except ValueError as exc:
        raise StoreError(f"invalid database URL {url_without_password(url)}: {exc}") from exc
