"""Starting real `bin/notifierd` processes for tests, and polling them for conditions."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import requests

from notifierd.control.client import call

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def short_socket_dir() -> Path:
    """A new directory with a short path, removed when the test run ends: AF_UNIX paths are
    limited to 108 bytes, and pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="nd-", dir="/tmp"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class Daemon:
    """One run of bin/notifierd with a config file, a state dir and a log file of its own."""

    def __init__(
        self,
        config: Path,
        state_dir: Path,
        socket: Path,
        log: Path,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        command: list[str] | None = None,
        path_flags: tuple[str, ...] = ("config", "state_dir", "socket"),
        cwd: Path | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.socket = socket
        self.log = log
        self.env = env or {}
        self.extra_args = extra_args or []
        # What runs the daemon: bin/notifierd, or e.g. [python, "-m", "notifierd"] of another
        # virtual environment (a plugin installed there).
        self.command = command or [str(BIN / "notifierd")]
        # The path settings given as flags; the others are left to the defaults (or the env).
        self.path_flags = path_flags
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    # -- life cycle -------------------------------------------------------------------------

    def start(self, wait: bool = True) -> Daemon:
        env = {**os.environ, **self.env}
        paths = {"config": self.config, "state_dir": self.state_dir, "socket": self.socket}
        args = [
            *self.command,
            *(f"--{name.replace('_', '-')}={paths[name]}" for name in self.path_flags),
            "--port",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--shutdown-timeout",
            "5",
            *self.extra_args,
        ]
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        if wait:
            started = wait_for(self._started_event, timeout=20, what="notifierd.started")
            self.port = int(str(started["http"]).rsplit(":", 1)[1])
        return self

    def _started_event(self) -> dict[str, Any] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"notifierd exited with {self.process.returncode}:\n"
                f"{self.log.read_text(errors='replace')[-3000:]}"
            )
        return self.event("notifierd.started", since_start=True)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def cleanup(self) -> None:
        """Stop the daemon if still running and make sure no worker process survives it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.process is not None:
                os.killpg(self.process.pid, signal.SIGKILL)

    # -- talking to it ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def send(self, channel: str, message: str | None = None, **fields: Any) -> requests.Response:
        data = dict(fields)
        if message is not None:
            data["message"] = message
        return requests.post(self.url(f"/api/send/{channel}"), data=data, timeout=10)

    def ping(self) -> requests.Response:
        return requests.get(self.url("/api/ping"), timeout=10)

    def call(self, command: str, **args: Any) -> Any:
        return call(self.socket, command, args)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "notifierctl"), "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def channel_status(self, name: str) -> dict[str, Any]:
        status = self.call("status")
        return next(c for c in status["channels"] if c["name"] == name)

    def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("deliveries", limit=10000, **filters)
        return result

    # -- its log ----------------------------------------------------------------------------

    def events(self, name: str | None = None, since_start: bool = False) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        with self.log.open("rb") as log:
            if since_start:
                log.seek(self._log_offset)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        found = []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and (name is None or event.get("event") == name):
                    found.append(event)
        return found

    def event(self, name: str, since_start: bool = False) -> dict[str, Any] | None:
        found = self.events(name, since_start)
        return found[-1] if found else None


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            # The state follows the command name, which is in parentheses and may hold spaces.
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] != "Z":
                alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


__all__ = ["Daemon", "pids_alive", "running", "short_socket_dir", "sys", "wait_for", "write_config"]
