"""PostgreSQL for the tests: the server this machine runs on 127.0.0.1:5432 (trust auth), or one
the tests start themselves (initdb + pg_ctl on a free port in a temporary directory), and a
fresh database per test, dropped afterwards.

Never skipped: a test that needs PostgreSQL and cannot have one fails, saying why. Set
NOTIFIERD_TEST_POSTGRES to another server's URL (its maintenance database, a superuser) to use
that one instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.fakes.server import free_port

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")
BINARIES = Path(os.environ.get("NOTIFIERD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: initdb and the server refuse to run as root: as root, they run as this user.
SERVER_USER = "postgres"
START_SECONDS = 60


def run_sync(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from synchronous code, even code called from a running
    event loop (a fixture an async fixture asked for): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine())
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine()).result()


def _reachable(url: str) -> str | None:
    """None when a session can be opened, else why not."""

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        await conn.close()

    try:
        run_sync(probe)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


class TempServer:
    """A PostgreSQL server of the tests' own, in a temporary directory, on a free port: for the
    tests that stop, restart or kill the server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(BINARIES / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        return subprocess.run(
            argv, capture_output=True, text=True, check=check, timeout=START_SECONDS
        )

    def init(self) -> None:
        if not (BINARIES / "initdb").exists():
            pytest.fail(f"no PostgreSQL binaries in {BINARIES} (set NOTIFIERD_TEST_PG_BIN)")
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            # Durability against an operating-system crash is not what these tests are about.
            " -c fsync=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()


@contextlib.contextmanager
def temp_server() -> Iterator[TempServer]:
    root = Path(tempfile.mkdtemp(prefix="nd-pg-", dir="/tmp"))
    server = TempServer(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def admin_url() -> Iterator[str]:
    """The URL of a server's maintenance database: the given or local one, else one started
    here. Fails (never skips) when there is none."""
    url = os.environ.get("NOTIFIERD_TEST_POSTGRES", DEFAULT_URL)
    problem = _reachable(url)
    if problem is None:
        yield url
        return
    try:
        with temp_server() as server:
            yield server.url
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        pytest.fail(
            f"the tests need PostgreSQL: {url} is not reachable ({problem}), and starting one"
            f" with {BINARIES}/initdb failed: {detail}",
            pytrace=False,
        )


def create_database(admin: str, prefix: str = "notifierd_test") -> str:
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    run_sync(create)
    return with_database(admin, name)


def drop_database(admin: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_sync(drop)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    yield from admin_url()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    url = create_database(postgres_admin_url)
    try:
        yield url
    finally:
        drop_database(postgres_admin_url, url)


@pytest.fixture
def postgres_server() -> Iterator[TempServer]:
    """A server of this test's own, which it may stop and restart."""
    try:
        with temp_server() as server:
            yield server
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        pytest.fail(f"cannot start a PostgreSQL server of the test's own: {detail}")


def check() -> int:
    """For CI, before the tests: exit 1, saying why, when the tests could not have PostgreSQL."""
    url = os.environ.get("NOTIFIERD_TEST_POSTGRES", DEFAULT_URL)
    problem = _reachable(url)
    if problem is not None:
        print(
            f"CI: PostgreSQL is not reachable at {url} ({problem}). The tests need it: start"
            " it (127.0.0.1:5432, trust authentication for user postgres) or set"
            " NOTIFIERD_TEST_POSTGRES to a server's URL",
            file=sys.stderr,
        )
        return 1
    missing = [name for name in ("initdb", "pg_ctl") if not (BINARIES / name).exists()]
    if missing:
        print(
            f"CI: {', '.join(missing)} not found in {BINARIES}: the tests that restart a"
            " PostgreSQL server start their own (install the server package, or set"
            " NOTIFIERD_TEST_PG_BIN)",
            file=sys.stderr,
        )
        return 1
    print(f"CI: PostgreSQL reachable at {url}; server binaries in {BINARIES}")
    return 0


if __name__ == "__main__":
    sys.exit(check())
