"""The operator's day, with real processes: paths that do not depend on the working directory,
one daemon per socket, a log file that fails loudly once and lives beside the real logrotate,
systemd's notify socket and journal, and auth that cannot be misconfigured silently."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import BIN, ROOT, Daemon, short_socket_dir, wait_for, write_config
from tests.integration.conftest import DaemonFactory

NULL_CHANNEL = 'channels:\n  devnull:\n    worker: "null"\n'
TOKEN = "token-from-a-file-0123456789"

DaemonMaker = Callable[..., Daemon]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[DaemonMaker]:
    """Daemons built from the harness's parts, with any of its arguments; all cleaned up."""
    made: list[Daemon] = []

    def build(name: str = "d", **kwargs: Any) -> Daemon:
        state_dir = kwargs.pop("state_dir", None) or short_socket_dir()
        daemon = Daemon(
            config=kwargs.pop("config", None)
            or write_config(tmp_path / f"{name}.yaml", NULL_CHANNEL),
            state_dir=state_dir,
            socket=kwargs.pop("socket", None) or state_dir / "notifierd.sock",
            log=tmp_path / f"{name}.log",
            **kwargs,
        )
        made.append(daemon)
        return daemon

    yield build
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def as_user() -> list[str]:
    """A command prefix that runs a program with a user id other than root's: the defaults
    under test are a user's (root's are the system service's, not to be written by tests). As
    root, a user namespace maps uid 1000 to root, so the files stay root's to the kernel."""
    if os.geteuid() != 0:
        return []
    prefix = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to run as a user other than root")
    probe = subprocess.run([*prefix, "id", "-u"], capture_output=True, text=True, check=False)
    if probe.stdout.strip() != "1000":
        pytest.skip(f"user namespaces are not available here: {probe.stderr.strip()}")
    return prefix


def user_env(home: Path, state_home: Path) -> dict[str, str]:
    """The environment of a user with this home: no setting names a path; the config comes
    from $HOME/.config (XDG_CONFIG_HOME empty), the state from $XDG_STATE_HOME."""
    return {"HOME": str(home), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": str(state_home)}


def run_ctl(
    prefix: list[str], env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, str(BIN / "notifierctl"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        env={**os.environ, **env},
    )


# -- 1. paths ------------------------------------------------------------------------------------


def test_paths_do_not_depend_on_the_working_directory(
    make: DaemonMaker, as_user: list[str], tmp_path: Path
) -> None:
    home = short_socket_dir()
    state_home = home / "state"
    config = home / ".config" / "notifierd" / "channels.yaml"
    config.parent.mkdir(parents=True)
    write_config(config, NULL_CHANNEL)
    env = user_env(home, state_home)
    daemon = make(
        config=config,
        state_dir=state_home / "notifierd",
        command=[*as_user, str(BIN / "notifierd")],
        env=env,
        path_flags=(),
        cwd=Path("/"),
    ).start()

    started = daemon.event("notifierd.started")
    assert started is not None
    assert started["socket"] == str(state_home / "notifierd" / "notifierd.sock")
    assert started["database"] == str(state_home / "notifierd" / "notifierd.db")
    for cwd in (Path("/"), tmp_path):
        status = run_ctl(as_user, env, cwd, "status")
        assert status.returncode == 0, status.stderr
        assert "devnull" in status.stdout

    elsewhere = short_socket_dir()
    lost = run_ctl(as_user, user_env(elsewhere, elsewhere / "state"), Path("/"), "status")
    assert lost.returncode == 1
    assert (
        f"  {elsewhere}/state/notifierd/notifierd.sock (the default for this user)" in lost.stderr
    )
    assert "  /run/notifierd/notifierd.sock (the system service's)" in lost.stderr
    assert "NOTIFIERD_SOCKET" in lost.stderr and "NOTIFIERD_STATE_DIR" in lost.stderr


def test_make_run_uses_the_checkout_s_files() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "notifierd --config etc/channels.yaml --state-dir state" in dry_run.stdout


def test_each_state_dir_has_its_socket_and_a_live_socket_is_not_taken(make: DaemonMaker) -> None:
    first = make("first", path_flags=("config", "state_dir")).start()
    second = make("second", path_flags=("config", "state_dir")).start()
    assert first.socket != second.socket
    assert first.call("status")["channels"][0]["name"] == "devnull"
    assert second.call("status")["channels"][0]["name"] == "devnull"

    intruder = make("intruder", socket=first.socket)
    intruder.start(wait=False)
    assert intruder.process is not None
    assert intruder.process.wait(30) == 2
    assert f"another notifierd is running on {first.socket}" in intruder.log.read_text()
    assert first.call("status")["paused"] is False  # still its socket


# -- 2. a log file that fails loudly once ---------------------------------------------------------


def test_an_unwritable_log_file_stops_the_start_with_one_error(
    make: DaemonMaker, tmp_path: Path
) -> None:
    (tmp_path / "plain").write_text("a file where a directory should be")
    log_file = tmp_path / "plain" / "notifierd.log"
    daemon = make(extra_args=["--log-file", str(log_file)])
    started = time.monotonic()
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(30) == 2
    assert time.monotonic() - started < 10
    output = daemon.log.read_text()
    assert output.splitlines() == [
        "notifierd: configuration error:",
        f"setting log_file (--log-file or NOTIFIERD_LOG_FILE): cannot write {log_file}: "
        f"[Errno 17] File exists: '{tmp_path / 'plain'}'",
    ]
    assert not daemon.socket.exists()  # nothing was bound


def test_a_log_file_failing_at_run_time_is_reported_once_and_recovers(
    make: DaemonMaker, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "notifierd.log"
    daemon = make(extra_args=["--log-file", str(log_file)]).start()
    (tmp_path / "full").symlink_to("/dev/full")
    (tmp_path / "full").replace(log_file)  # the disk is full from now on
    for index in range(30):
        assert daemon.send("devnull", f"message {index}").status_code == 204
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 30, what="deliveries")
    assert daemon.ping().status_code == 204
    failed = wait_for(lambda: daemon.events("log_file.write_failed"), what="the error line")
    assert "No space left on device" in failed[0]["error"]

    log_file.unlink()  # room again
    daemon.send("devnull", "after")
    recovered = wait_for(lambda: daemon.events("log_file.recovered"), what="recovery")
    assert recovered[0]["lost_lines"] >= 30
    wait_for(lambda: log_file.exists() and "delivery.attempt" in log_file.read_text(), what="lines")
    assert len(daemon.events("log_file.write_failed")) == 1
    assert "Traceback" not in daemon.log.read_text()
    assert daemon.terminate() == 0


# -- 3. logrotate ---------------------------------------------------------------------------------


def readme_logrotate_stanza() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(
        r"\n( *)```\n(\1/var/log/notifierd/notifierd\.log \{\n.*?\n\1\})\n", text, re.S
    )
    assert match, "README has no logrotate stanza"
    return textwrap.dedent(match.group(2))


def delivered_ids(directory: Path) -> list[int]:
    """The delivery ids of every `delivered` attempt line in the log file and its rotations."""
    ids = []
    for path in directory.glob("notifierd.log*"):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for line in data.decode().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "delivery.attempt" and event["outcome"] == "delivered":
                    ids.append(event["delivery_id"])
    return ids


def logrotate(config: Path) -> None:
    state = config.with_suffix(".state")
    done = subprocess.run(
        ["logrotate", "--force", "--state", str(state), str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def needs_logrotate() -> None:
    if shutil.which("logrotate") is None:
        pytest.skip("needs logrotate (apt-get install logrotate; .ci/run installs it)")


MESSAGES = 300
ROTATIONS = 5
BUILT_IN_LIMIT = 80_000  # bytes: a batch's lines take about 30,000


@pytest.mark.usefixtures("needs_logrotate")
def test_logrotate_create_and_sighup_loses_no_line(make: DaemonMaker, tmp_path: Path) -> None:
    """The README's stanza, rotating while messages are delivered."""
    log_dir = tmp_path / "log"
    log_file = log_dir / "notifierd.log"
    daemon = make(extra_args=["--log-file", str(log_file)]).start()
    assert daemon.process is not None
    stanza = readme_logrotate_stanza()
    assert "create" in stanza and "postrotate" in stanza
    config = tmp_path / "logrotate.conf"
    config.write_text(
        stanza.replace("/var/log/notifierd/notifierd.log", str(log_file)).replace(
            "systemctl reload notifierd.service", f"kill -HUP {daemon.process.pid}"
        )
    )

    def send_all() -> None:
        for index in range(MESSAGES):
            daemon.send("devnull", f"m{index}")

    def delivered() -> int:
        return int(daemon.channel_status("devnull")["delivered"])

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    for rotation in range(1, ROTATIONS + 1):
        least = rotation * MESSAGES // (ROTATIONS + 1)
        wait_for(lambda: delivered() >= least, what="deliveries between rotations")  # noqa: B023
        logrotate(config)
    sender.join(60)
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == MESSAGES, what="all")
    wait_for(lambda: len(delivered_ids(log_dir)) >= MESSAGES, what="every delivery line")
    ids = delivered_ids(log_dir)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == MESSAGES
    assert len(list(log_dir.glob("notifierd.log*"))) == ROTATIONS + 1
    assert len(daemon.events("notifierd.log_reopened")) == ROTATIONS


@pytest.mark.usefixtures("needs_logrotate")
def test_logrotate_copytruncate_loses_no_line(make: DaemonMaker, tmp_path: Path) -> None:
    """copytruncate loses what is written between its copy and its truncation (logrotate's
    manual says so): the rotations happen between batches. The built-in rotation is on, at a
    size no file reaches between two rotations but all of them together pass: it must see the
    file truncated, not count on and rotate over logrotate's files."""
    log_dir = tmp_path / "log"
    log_file = log_dir / "notifierd.log"
    daemon = make(
        extra_args=["--log-file", str(log_file), "--log-file-max-bytes", str(BUILT_IN_LIMIT)]
    ).start()
    stanza = readme_logrotate_stanza()
    stanza = re.sub(r"\n\s*postrotate\n.*?endscript", "", stanza, flags=re.S)
    stanza = stanza.replace("create 0640", "copytruncate")
    config = tmp_path / "logrotate.conf"
    config.write_text(stanza.replace("/var/log/notifierd/notifierd.log", str(log_file)))

    batch = MESSAGES // (ROTATIONS + 1)
    for rotation in range(ROTATIONS + 1):
        for index in range(batch):
            daemon.send("devnull", f"m{rotation}-{index}")
        total = (rotation + 1) * batch
        wait_for(lambda: len(delivered_ids(log_dir)) >= total, what="the lines")  # noqa: B023
        if rotation < ROTATIONS:
            logrotate(config)
        assert log_file.stat().st_size < BUILT_IN_LIMIT
    ids = delivered_ids(log_dir)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == MESSAGES
    assert len(list(log_dir.glob("notifierd.log*"))) == ROTATIONS + 1


# -- 4. systemd -----------------------------------------------------------------------------------


def test_a_notify_socket_nobody_reads_stops_neither_ping_nor_sigterm(make: DaemonMaker) -> None:
    path = short_socket_dir() / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    filler.sendto(b"X" * 1024, str(path))
        daemon = make(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"}).start()
        wait_for(lambda: daemon.ping().status_code == 204, timeout=5, what="ping")
        daemon.ctl("pause")  # a STATUS= datagram more, dropped too
        assert [e["dropped"] for e in daemon.events("systemd.notify_failed")] == ["READY"]
        stopping = time.monotonic()
        assert daemon.terminate(timeout=15) == 0
        assert time.monotonic() - stopping < 10


def test_lines_carry_their_priority_when_stderr_is_the_journal(
    make: DaemonMaker, tmp_path: Path
) -> None:
    daemon = make(extra_args=["--host", "127.0.0.1"])
    daemon.log.touch()
    found = daemon.log.stat()
    daemon.env = {"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}", "NOTIFIERD_PROT": "1"}
    daemon.start(wait=False)

    def lines() -> list[str]:
        text = daemon.log.read_text()
        return text.splitlines() if "notifierd.started" in text else []

    output = wait_for(lines, what="the start-up line")
    started = next(line for line in output if "notifierd.started" in line)
    assert started.startswith("<6>{")
    assert json.loads(started[3:])["event"] == "notifierd.started"
    warning = next(line for line in output if "settings.unknown_variable" in line)
    assert warning.startswith("<4>{")
    assert daemon.terminate() == 0


# -- 5. auth --------------------------------------------------------------------------------------


def test_settings_that_are_probably_mistakes_are_warned_about(make: DaemonMaker) -> None:
    daemon = make(
        env={"NOTIFIERD_API_TOKEN": TOKEN, "NOTIFIERD_TELEGRAM_TOKEN": "read by the file"},
        extra_args=["--host", "0.0.0.0"],
        config=write_config(
            short_socket_dir() / "channels.yaml",
            NULL_CHANNEL + '    params: {recipients: ["${NOTIFIERD_TELEGRAM_TOKEN}"]}\n',
        ),
    ).start()
    [unknown] = daemon.events("settings.unknown_variable")
    assert unknown["variable"] == "NOTIFIERD_API_TOKEN"
    assert unknown["closest"] == "NOTIFIERD_API_TOKENS"
    assert TOKEN not in daemon.log.read_text()
    [open_api] = daemon.events("api.open_without_tokens")
    assert open_api["host"] == "0.0.0.0"
    started = daemon.event("notifierd.started")
    assert started is not None and started["auth"].startswith("none")


def test_tokens_from_a_file(make: DaemonMaker, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# one per line\n{TOKEN}\n")
    daemon = make(env={"NOTIFIERD_API_TOKENS_FILE": str(tokens)}).start()
    started = daemon.event("notifierd.started")
    assert started is not None
    assert started["auth"] == "bearer token required for hooks, jobs, send"
    url = daemon.url("/api/send/devnull")
    assert requests.post(url, data={"message": "x"}, timeout=5).status_code == 401
    accepted = requests.post(
        url, data={"message": "x"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert accepted.status_code == 204
    assert daemon.process is not None
    assert TOKEN not in Path(f"/proc/{daemon.process.pid}/cmdline").read_text()
    assert TOKEN not in daemon.log.read_text()


def test_a_bad_tokens_file_stops_the_start(make: DaemonMaker, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("short\n")
    daemon = make(env={"NOTIFIERD_API_TOKENS_FILE": str(tokens)})
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(30) == 2
    assert f"{tokens}, line 1: an API token must be at least 16" in daemon.log.read_text()


def test_query_values_are_masked_in_the_access_log(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    secret = "the-message-sent-in-the-query"
    response = requests.post(daemon.url(f"/api/send/devnull?message={secret}&delay=0"), timeout=5)
    assert response.status_code == 204
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 1, what="delivery")
    line = wait_for(lambda: daemon.events("http.request"), what="the access line")[-1]
    assert line["target"] == "/api/send/devnull?message=***&delay=***"
    assert secret not in daemon.log.read_text()
