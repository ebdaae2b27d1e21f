"""Starting the servers under test: a real `bin/notifierd` with a temporary state dir and
channel file, and the bare aiohttp baseline. Plus what is measured from outside: start-up time,
resident memory, and the Store (read-only, after or beside a run)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTIFIERD = ROOT / "bin" / "notifierd"
CHANNEL = "devnull"
START_TIMEOUT = 60.0


def channel_file(path: Path, processes: int) -> Path:
    path.write_text(
        "channels:\n"
        f"  {CHANNEL}:\n"
        '    worker: "null"\n'
        f"    processes: {processes}\n"
        "    ttl: 86400\n",
        encoding="utf-8",
    )
    return path


class Notifierd:
    """One run of bin/notifierd. `start` returns the seconds until `/api/ping` answered 204."""

    def __init__(
        self,
        state_dir: Path,
        processes: int = 1,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        """`prefix`: a command the daemon's Python runs under (callgrind); the start-up may
        then take minutes rather than seconds."""
        self.state_dir = state_dir
        self.prefix = prefix or []
        self.start_timeout = START_TIMEOUT * (10 if prefix else 1)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config = channel_file(state_dir / "channels.yaml", processes)
        self.log = state_dir / "notifierd.log"
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def database(self) -> Path:
        return self.state_dir / "notifierd.db"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> float:
        offset = self.log.stat().st_size if self.log.exists() else 0
        # Under a prefix the daemon's Python itself must be its child, not bin/notifierd's sh.
        command = [*self.prefix, sys.executable, "-m", "notifierd"] if self.prefix else [NOTIFIERD]
        args = [
            *map(str, command),
            "--config",
            str(self.config),
            "--state-dir",
            str(self.state_dir),
            "--port",
            "0",
            "--log-format",
            "json",
        ]
        began = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
                cwd=self.state_dir,
                start_new_session=True,
            )
        timeout = self.start_timeout
        started = _poll(lambda: self._started(offset), "notifierd.started", timeout)
        self.port = int(str(started["http"]).rsplit(":", 1)[1])
        _poll(lambda: ping(self.url("/api/ping")), "a 204 on /api/ping", timeout)
        return time.perf_counter() - began

    def _started(self, offset: int) -> dict[str, Any] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"notifierd exited with {self.process.returncode}:\n{tail}")
        with self.log.open("rb") as log:
            log.seek(offset)
            for line in log.read().splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("event") == "notifierd.started":
                        return event
        return None

    def control(self, *args: str) -> None:
        """Run `notifierctl` against this daemon, e.g. `control("stop", CHANNEL)`."""
        socket = self.state_dir / "notifierd.sock"
        subprocess.run(
            [str(ROOT / "bin" / "notifierctl"), "--socket", str(socket), *args],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
        )

    def workers_ready(self, count: int) -> bool:
        return len(self.worker_pids()) >= count and _count_events(self.log, "worker.ready") >= count

    def worker_pids(self) -> list[int]:
        """The worker processes (not multiprocessing's resource tracker)."""
        return [pid for pid in children(self.pid) if b" worker " in _cmdline(pid)]

    def stop(self) -> float:
        """SIGTERM; returns the seconds until the process ended."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        began = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        took = time.perf_counter() - began
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return took


class Baseline:
    """The bare aiohttp app of `bench.baseline_app`, in a process of its own; with `durable`
    (a database file) the durable floor, which stores each message before its 204."""

    def __init__(
        self, uvloop: bool = False, prefix: list[str] | None = None, durable: Path | None = None
    ) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.uvloop = uvloop
        self.prefix = prefix or []
        self.durable = durable

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "bench.baseline_app", "--port", "0"]
            + (["--uvloop"] if self.uvloop else [])
            + (["--durable", str(self.durable)] if self.durable else []),
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        self.port = int(json.loads(self.process.stdout.readline())["port"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


def ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status) == 204
    except OSError:
        return False


def _poll(condition: Any, what: str, timeout: float = START_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def wait_until(condition: Any, what: str, timeout: float = START_TIMEOUT) -> Any:
    return _poll(condition, what, timeout)


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            found.extend(int(child) for child in text.split())
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's children that have ended (and been waited
    for) so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _count_events(log: Path, name: str) -> int:
    if not log.exists():
        return 0
    needle = f'"{name}"'.encode()
    return sum(1 for line in log.read_bytes().splitlines() if needle in line)


def read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)


def count_jobs(database: Path, since_id: int = 0) -> int:
    with contextlib.closing(read_only(database)) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM jobs WHERE id > ?", (since_id,)).fetchone()[0]
        )


def delivered(database: Path, since_id: int = 0) -> int:
    with contextlib.closing(read_only(database)) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE id > ? AND state = 'delivered'", (since_id,)
        ).fetchone()
        return int(row[0])


def delivery_times(database: Path, since_id: int = 0) -> list[tuple[float, float]]:
    """(created_at, updated_at) of the delivered deliveries: accepted at, delivered at."""
    with contextlib.closing(read_only(database)) as conn:
        rows = conn.execute(
            "SELECT created_at, updated_at FROM deliveries WHERE id > ? AND state = 'delivered'",
            (since_id,),
        ).fetchall()
    return [(float(a), float(b)) for a, b in rows]
