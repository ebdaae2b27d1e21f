"""PostgreSQL for the benchmark (`python -m bench --store-url postgresql://...`): a fresh
database per scenario on the server the URL names (created through the URL's own database,
dropped afterwards whatever happened), what the benchmark reads of it (jobs and deliveries,
as `bench.servers` reads SQLite), and the CPU time the server's processes spend for it.

The server's CPU is read from /proc, so only for a server on this machine: every backend of
the benchmark's database (found in `pg_stat_activity` by a sampler polling a few times a
second, each measured from the first moment it was seen) apart from the server's background
writers (walwriter, checkpointer, background writer), which serve every database of the
server and are shown separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from bench.servers import cpu_seconds
from notifierd.store.factory import url_without_password

T = TypeVar("T")
PREFIX = "notifierd_bench"
CONNECT_SECONDS = 10.0
#: How often the sampler looks for the database's backends and reads their CPU.
SAMPLE_SECONDS = 0.2
BACKGROUND = ("walwriter", "checkpointer", "background writer")
PENDING = """
SELECT EXISTS (SELECT 1 FROM deliveries WHERE state = 'queued')
    OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'leased')
"""
#: What the benchmark's own statements start with, to leave them out of pg_stat_statements'.
MARK = "/* bench */ "
THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"
RESET_STATEMENTS = f"SELECT pg_stat_statements_reset(0, {THIS_DATABASE}, 0)"
TOP_STATEMENTS = f"""
SELECT calls, total_exec_time + total_plan_time, total_plan_time, query FROM pg_stat_statements
 WHERE dbid = {THIS_DATABASE} AND query NOT LIKE '/* bench */%'
 ORDER BY 2 DESC LIMIT $1
"""
PIDS = """
SELECT pid, datname IS NOT DISTINCT FROM $1 AS ours FROM pg_stat_activity
 WHERE datname = $1 OR backend_type = ANY($2::text[])
"""


def _driver() -> Any:
    try:
        import asyncpg  # noqa: PLC0415 - only for the PostgreSQL scenarios
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise RuntimeError(
            "the PostgreSQL scenarios need pip install 'notifierd[postgresql]'"
        ) from exc
    return asyncpg


def _run(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coroutine())


async def _connect(url: str) -> Any:
    return await _driver().connect(url, timeout=CONNECT_SECONDS)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def problem(url: str) -> str | None:
    """None when `url` can be connected to, else why not (without the password)."""

    async def probe() -> None:
        conn = await _connect(url)
        await conn.close()

    try:
        _run(probe)
    except Exception as exc:  # whatever the driver raises: it is reported, not hidden
        return f"{url_without_password(url)}: {type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class Statement:
    """One statement's share of the server's time (pg_stat_statements): execution and
    planning, milliseconds, summed over its calls."""

    calls: int
    total_ms: float
    plan_ms: float
    query: str


class Database:
    """One benchmark's database: its URL (for the daemons' NOTIFIERD_STORE_URL), its name,
    and the URL it was created through (where the CPU sampler connects). What the benchmark
    reads goes through one session of its own, whose backend the sampler leaves out."""

    def __init__(self, url: str, name: str, admin_url: str) -> None:
        self.url = url
        self.name = name
        self.admin_url = admin_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None
        self.session_pid = 0

    def _value(self, query: str, *args: Any) -> Any:
        return self._call(lambda conn: conn.fetchval(MARK + query, *args))

    def _call(self, use: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._conn = self._loop.run_until_complete(_connect(self.url))
            self.session_pid = int(
                self._loop.run_until_complete(self._conn.fetchval("SELECT pg_backend_pid()"))
            )
        return self._loop.run_until_complete(use(self._conn))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._conn.close())
            self._loop.close()
            self._loop = None

    def statements_on(self) -> bool:
        """pg_stat_statements in this database, if the server loads it
        (shared_preload_libraries): then `top_statements` can say where the server's time
        goes. False when it does not."""
        try:
            self._value("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self._value("SELECT count(*) FROM pg_stat_statements")
        except _driver().PostgresError:
            return False
        return True

    def reset_statements(self) -> None:
        self._value(RESET_STATEMENTS)

    def top_statements(self, limit: int) -> list[Statement]:
        """This database's statements that took the server the most time since the reset,
        the benchmark's own reads left out."""
        rows = self._call(lambda conn: conn.fetch(MARK + TOP_STATEMENTS, limit))
        return [
            Statement(int(r[0]), float(r[1]), float(r[2]), " ".join(r[3].split())) for r in rows
        ]

    def last_job_id(self) -> int:
        """The highest job id so far (0: none), to count what a run adds after it."""
        if not self._value("SELECT to_regclass('jobs') IS NOT NULL"):
            return 0
        return int(self._value("SELECT COALESCE(max(id), 0) FROM jobs"))

    def count_jobs(self, since_id: int = 0) -> int:
        return int(self._value("SELECT count(*) FROM jobs WHERE id > $1", since_id))

    def pending(self) -> bool:
        """Whether any delivery is queued or leased (read from the partial indexes: cheap
        enough to poll while a measurement runs)."""
        return bool(self._value(PENDING))

    def delivered(self, since_id: int = 0) -> int:
        return int(
            self._value(
                "SELECT count(*) FROM deliveries WHERE job_id > $1 AND state = 'delivered'",
                since_id,
            )
        )

    def delivery_times(self, since_id: int = 0) -> list[tuple[float, float]]:
        """(created_at, updated_at) of the delivered deliveries of the jobs after `since_id`:
        accepted at, delivered at (the hosts' clocks: one machine's here)."""
        query = MARK + (
            "SELECT created_at, updated_at FROM deliveries"
            " WHERE job_id > $1 AND state = 'delivered'"
        )
        rows = self._call(lambda conn: conn.fetch(query, since_id))
        return [(float(a), float(b)) for a, b in rows]


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[Database]:
    """A new, empty database on the server of `admin_url`, dropped when the block ends (the
    daemons' sessions closed by force, should one be left)."""
    name = f"{PREFIX}_{os.getpid()}_{secrets.token_hex(4)}"

    async def execute(statement: str) -> None:
        conn = await _connect(admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    _run(lambda: execute(f'CREATE DATABASE "{name}"'))
    database = Database(with_database(admin_url, name), name, admin_url)
    try:
        yield database
    finally:
        database.close()
        _run(lambda: execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass(frozen=True)
class ServerCpu:
    """CPU seconds the server spent in a window: the database's backends, and the background
    writers every database shares. None: the server's processes are not readable here (not
    on this machine)."""

    backends: float | None
    background: float | None
    seconds: float

    def per_message_us(self, messages: int) -> tuple[float | None, float | None]:
        def per(value: float | None) -> float | None:
            return None if value is None else value * 1e6 / max(1, messages)

        return per(self.backends), per(self.background)


class CpuSampler:
    """Measures `ServerCpu` between `start` and `stop`, from a thread of its own (an event
    loop and one session to the admin database, so its own backend is not counted)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.last_job_id()  # its session opened, so that its pid is known and left out
        self._exclude = database.session_pid
        #: pid -> (ours, CPU seconds when first seen, CPU seconds when last seen).
        self._seen: dict[int, tuple[bool, float, float]] = {}
        self._unreadable = False
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="pg-cpu", daemon=True)
        self._began = 0.0

    def start(self) -> CpuSampler:
        self._began = time.monotonic()
        self._thread.start()
        if not self._first.wait(CONNECT_SECONDS * 2):
            raise RuntimeError("the CPU sampler took no first sample")
        if self._error is not None:
            raise RuntimeError(f"the CPU sampler failed: {self._error}")
        return self

    def stop(self) -> ServerCpu:
        self._stop.set()
        self._thread.join(CONNECT_SECONDS * 2)
        if self._error is not None:
            raise RuntimeError(f"the CPU sampler failed: {self._error}")
        with self._lock:
            if self._unreadable:
                return ServerCpu(None, None, time.monotonic() - self._began)
            ours = sum(last - first for mine, first, last in self._seen.values() if mine)
            shared = sum(last - first for mine, first, last in self._seen.values() if not mine)
        return ServerCpu(ours, shared, time.monotonic() - self._began)

    def _main(self) -> None:
        try:
            asyncio.run(self._sample())
        except BaseException as exc:  # reported by start/stop
            self._error = exc
            self._first.set()

    async def _sample(self) -> None:
        conn = await _connect(self.database.admin_url)
        try:
            first = True
            while True:
                rows = await conn.fetch(PIDS, self.database.name, list(BACKGROUND))
                pids = [(int(r["pid"]), bool(r["ours"])) for r in rows]
                self._record([(pid, ours) for pid, ours in pids if pid != self._exclude], first)
                if first:
                    first = False
                    self._first.set()
                if self._stop.is_set():
                    return
                await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            await conn.close()

    def _record(self, pids: list[tuple[int, bool]], first: bool) -> None:
        with self._lock:
            for pid, ours in pids:
                try:
                    now = cpu_seconds(pid)
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue  # ended meanwhile, or not a process of this machine
                known = self._seen.get(pid)
                # A process first seen after the window began started within it.
                start = now if first else (known[1] if known else 0.0)
                self._seen[pid] = (ours, start, now)
            if first and pids and not self._seen:
                self._unreadable = True  # none of the server's processes is on this machine
