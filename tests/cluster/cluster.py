"""Several real `bin/notifierd` hosts on one PostgreSQL database (issue 16, DESIGN §9), the load
a load balancer would give them, and what a test reads of the shared database.

    cluster = Cluster(tmp_path, database_url, config_for=lambda host: CHANNELS)
    hosts = cluster.start(3)                # own ports, state dirs, sockets and logs
    load = Load(hosts, "hook", per_second=40).start()
    cluster.kill(hosts[1])                  # the whole process group: a host dies
    ...
    cluster.cleanup()                       # every process it started (fixture finalizer)

Each host runs in a process group of its own (`Daemon` starts a new session), so that killing
or stopping a host hits the parent and its worker processes together, as the loss of a machine
would: killing the parent alone would leave orphan workers that keep sending.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import requests

from notifierd.settings import Settings
from notifierd.store.postgres.store import PostgresStore
from tests.harness import Daemon, short_socket_dir, wait_for, write_config
from tests.postgres import run_sync

#: The `dead_after` the cluster tests run with, where the daemon takes it as a setting
#: (`--dead-after`); else the Store's default, which is then what the hosts use.
SHORT_DEAD_AFTER = 3.0
TAKES_DEAD_AFTER = "dead_after" in Settings.model_fields
_STORE_DEFAULT = float(inspect.signature(PostgresStore).parameters["dead_after"].default)
DEAD_AFTER = SHORT_DEAD_AFTER if TAKES_DEAD_AFTER else _STORE_DEFAULT


class Cluster:
    """Hosts named a, b, c, ... sharing the database at `url`; each host's channel file is
    `config_for(name)` (a header naming the host lets a fake tell who sent what)."""

    def __init__(
        self,
        root: Path,
        url: str,
        config_for: Callable[[str], str],
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.url = url
        self.config_for = config_for
        self.env = env or {}
        self.hosts: list[Daemon] = []
        self._stopped: set[int] = set()

    def start(self, count: int) -> list[Daemon]:
        """`count` more hosts, started one after the other (each is ready when this returns)."""
        made = [self._make(chr(ord("a") + len(self.hosts) + index)) for index in range(count)]
        for daemon in made:
            self.hosts.append(daemon)
            daemon.start()
        return made

    def _make(self, name: str) -> Daemon:
        args = ["--store-url", self.url]
        if TAKES_DEAD_AFTER:
            args += ["--dead-after", f"{DEAD_AFTER:g}"]
        return Daemon(
            config=write_config(self.root / f"{name}-channels.yaml", self.config_for(name)),
            state_dir=self.root / f"{name}-state",
            socket=short_socket_dir() / "ctl.sock",
            log=self.root / f"{name}.log",
            env=self.env,
            extra_args=args,
        )

    @staticmethod
    def name(host: Daemon) -> str:
        return host.state_dir.name.removesuffix("-state")

    @staticmethod
    def pid(host: Daemon) -> int:
        assert host.process is not None
        return host.process.pid

    def kill(self, host: Daemon) -> None:
        """SIGKILL to the host's process group: the parent and its workers die at once."""
        pid = self.pid(host)
        os.killpg(pid, signal.SIGKILL)
        assert host.process is not None
        host.process.wait(10)
        # Workers that had not been reaped yet are gone with the group too.
        wait_for(lambda: not _group_alive(pid), timeout=10, what=f"process group {pid} gone")

    def stop(self, host: Daemon) -> None:
        """SIGSTOP to the host's process group: it is frozen, as a host cut off or suspended."""
        self._stopped.add(self.pid(host))
        os.killpg(self.pid(host), signal.SIGSTOP)

    def cont(self, host: Daemon) -> None:
        os.killpg(self.pid(host), signal.SIGCONT)
        self._stopped.discard(self.pid(host))

    def cleanup(self) -> None:
        """Every host's process group ends, whatever state a failed test left it in."""
        for pid in self._stopped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGCONT)
        for host in self.hosts:
            if host.process is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(host.process.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    host.process.wait(10)
            host.cleanup()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of the group (children of a dead parent, not reaped by init yet) count as gone.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


# -- load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request of the load: to which host, when (monotonic), and what came back."""

    host: str
    sent_at: float
    answered_at: float
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    job_id: int | None
    body: str


class Load:
    """POSTs to `channel` on every host, each host from a thread of its own at `per_second`,
    as a load balancer spreading clients over the hosts would. Messages are unique
    (`<host>-<n>`). Every answer is kept; a host that is down is tried all the same (its
    requests fail fast and count as answered 0)."""

    def __init__(self, hosts: Sequence[Daemon], channel: str, per_second: float) -> None:
        self.hosts = list(hosts)
        self.channel = channel
        self.interval = 1.0 / per_second
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(host,), daemon=True) for host in self.hosts
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hangs"

    def _run(self, host: Daemon) -> None:
        session = requests.Session()
        name = Cluster.name(host)
        next_at = time.monotonic()
        for index in itertools.count(1):
            if self._stopping.is_set():
                break
            sent_at = time.monotonic()
            status, job_id, body = _post(session, host, self.channel, f"{name}-{index}")
            with self._lock:
                self.answers.append(Answer(name, sent_at, time.monotonic(), status, job_id, body))
            next_at = max(next_at + self.interval, time.monotonic() - 1.0)
            self._stopping.wait(max(0.0, next_at - time.monotonic()))
        session.close()

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    @property
    def accepted(self) -> list[int]:
        """The job ids answered 204."""
        return [a.job_id for a in self.snapshot() if a.status == 204 and a.job_id is not None]

    def count(self, status: int, host: str | None = None) -> int:
        return sum(1 for a in self.snapshot() if a.status == status and host in (None, a.host))


def _post(
    session: requests.Session, host: Daemon, channel: str, message: str
) -> tuple[int, int | None, str]:
    try:
        response = session.post(
            host.url(f"/api/send/{channel}"), data={"message": message}, timeout=30
        )
    except requests.RequestException as exc:
        session.close()  # a kept-alive connection to a dead host is gone
        return 0, None, f"{type(exc).__name__}: {exc}"
    job_id = response.headers.get("X-Job-Id")
    return response.status_code, int(job_id) if job_id else None, response.text


# -- the shared database, as a test reads it ---------------------------------------------------


class Database:
    """Reads of the cluster's database, one short session each (so a restarted server is no
    trouble); `None` from `try_*` while it cannot be reached."""

    def __init__(self, url: str) -> None:
        self.url = url

    def fetch(self, query: str, *args: Any) -> list[Any]:
        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.url, timeout=10)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return run_sync(run)

    def leased_by(self, pid: int) -> set[int]:
        """The deliveries leased under any node id of the daemon with this pid (a host that
        registered again keeps its pid: `host:pid:random`)."""
        rows = self.fetch(
            "SELECT id FROM deliveries WHERE state = 'leased' AND lease_owner LIKE $1",
            f"%:{pid}:%",
        )
        return {row["id"] for row in rows}

    def leased(self) -> set[int]:
        """Every delivery leased now, by any host."""
        rows = self.fetch("SELECT id FROM deliveries WHERE state = 'leased'")
        return {row["id"] for row in rows}

    def paused(self) -> tuple[bool, set[int]]:
        """Whether the service is paused (the flag every claim checks), and what is leased, as
        one snapshot."""
        [row] = self.fetch(
            "SELECT EXISTS (SELECT 1 FROM flags WHERE name = 'paused'),"
            " ARRAY(SELECT id FROM deliveries WHERE state = 'leased')"
        )
        return bool(row[0]), set(row[1])

    def by_state(self) -> dict[str, int]:
        rows = self.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {row[0]: int(row[1]) for row in rows}

    def undelivered(self, job_ids: Sequence[int]) -> dict[int, str]:
        """Of `job_ids`, those with a delivery not (yet) delivered (and its state), or with no
        delivery at all ("missing")."""
        rows = self.fetch(
            "SELECT job_id, state FROM deliveries WHERE job_id = ANY($1::bigint[])",
            list(job_ids),
        )
        found = {row["job_id"]: row["state"] for row in rows if row["state"] != "delivered"}
        known = {row["job_id"] for row in rows}
        found.update({job: "missing" for job in job_ids if job not in known})
        return found

    def undelivered_deliveries(self, ids: Collection[int]) -> dict[int, str]:
        """Of the deliveries `ids`, those not delivered (yet), with their state."""
        rows = self.fetch(
            "SELECT id, state FROM deliveries"
            " WHERE id = ANY($1::bigint[]) AND state <> 'delivered'",
            list(ids),
        )
        return {row["id"]: row["state"] for row in rows}

    def delivery_ids(self, job_ids: Sequence[int]) -> dict[int, int]:
        """Delivery id -> job id, for `job_ids`."""
        rows = self.fetch(
            "SELECT id, job_id FROM deliveries WHERE job_id = ANY($1::bigint[])", list(job_ids)
        )
        return {row["id"]: row["job_id"] for row in rows}


def all_delivered(database: Database, job_ids: Sequence[int]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return not database.undelivered(job_ids)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    return check


def stays(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Check `condition` every 0.05 s for `seconds`: an observation window in which something
    must not happen (not a wait for something to happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.05)
    assert condition(), what
