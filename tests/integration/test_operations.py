"""Operations with real processes: the journal API and its pruning, metrics, the systemd notify
protocol, API tokens, log rotation and SIGHUP, the access log."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import short_socket_dir, wait_for
from tests.integration.conftest import DaemonFactory

TOKEN = "token-for-tests-5f1c0a9e7b"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    prefix = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {prefix} in:\n{text}")


def test_the_journal_shows_each_delivery_and_attempt(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon("""
channels:
  fanout:
    worker: "null"
    retry: {delay: 0.1, jitter: 0}
    params:
      recipients: [alice, bob]
      faults: [{kind: temporary, times: 1}]
""").start()
    job_id = daemon.send("fanout", "Привет").headers["X-Job-Id"]

    def job() -> dict[str, object] | None:
        found = requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=5).json()
        states = {d["state"] for d in found["deliveries"]}
        return found if states == {"delivered"} else None

    found = wait_for(job, what="both deliveries done")
    assert found["channel"] == "fanout"
    assert found["message"] == "Привет"
    deliveries = found["deliveries"]
    assert isinstance(deliveries, list)
    assert sorted(d["recipient"] for d in deliveries) == ["alice", "bob"]
    for delivery in deliveries:
        assert delivery["attempts"] == 2
        assert [a["outcome"] for a in delivery["history"]] == ["temporary", "delivered"]
        assert delivery["history"][0]["error"] == "null worker: injected temporary failure"
        assert delivery["history"][1]["duration_ms"] >= 0
    unknown = requests.get(daemon.url("/api/jobs/424242"), timeout=5)
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_job"


def test_finished_deliveries_are_pruned_after_the_retention(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n', env={"NOTIFIERD_JOURNAL_RETENTION": "1"}
    ).start()
    finished = daemon.send("devnull", "done soon").headers["X-Job-Id"]
    waiting = daemon.send("devnull", "not yet", delay="60").headers["X-Job-Id"]

    wait_for(
        lambda: requests.get(daemon.url(f"/api/jobs/{finished}"), timeout=5).status_code == 404,
        what="the finished job to be pruned",
    )

    still = requests.get(daemon.url(f"/api/jobs/{waiting}"), timeout=5)
    assert still.status_code == 200, "a delivery that is not finished must never be pruned"
    assert daemon.channel_status("devnull")["delayed"] == 1


def test_metrics_after_known_traffic(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon("""
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.1, jitter: 0}
    params:
      faults:
        - {kind: permanent, match: "^refuse"}
        - {kind: temporary, match: "^flaky", times: 1}
""").start()
    for text in ("one", "two", "three", "refuse me", "flaky"):
        assert daemon.send("devnull", text).status_code == 204
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 4, what="deliveries")
    [pid] = daemon.channel_status("devnull")["pids"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: daemon.event("worker.died"), what="the death to be noticed")

    text = requests.get(daemon.url("/metrics"), timeout=5).text

    assert metric(text, "notifierd_accepted_total", channel="devnull") == 5
    assert metric(text, "notifierd_delivered_total", channel="devnull") == 4
    assert metric(text, "notifierd_failed_total", channel="devnull") == 1
    assert metric(text, "notifierd_retried_total", channel="devnull") == 1
    assert metric(text, "notifierd_dead_total", channel="devnull") == 0
    assert metric(text, "notifierd_deliveries", channel="devnull", state="delivered") == 4
    assert metric(text, "notifierd_deliveries", channel="devnull", state="failed") == 1
    assert metric(text, "notifierd_accept_to_delivered_seconds_count", channel="devnull") == 4
    assert metric(text, "notifierd_worker_restarts_total", channel="devnull") == 1
    assert metric(text, "notifierd_paused") == 0

    daemon.ctl("pause")
    assert metric(requests.get(daemon.url("/metrics"), timeout=5).text, "notifierd_paused") == 1


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    path = short_socket_dir() / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(10)
    yield listener
    listener.close()


def test_systemd_notify_datagrams_in_order(
    make_daemon: DaemonFactory, notify_socket: socket.socket
) -> None:
    # Read as systemd does, while the daemon runs: a socket nobody reads drops datagrams.
    messages: list[str] = []
    notify_socket.settimeout(0.2)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                messages.append(notify_socket.recv(4096).decode())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    daemon = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n',
        env={
            "NOTIFY_SOCKET": notify_socket.getsockname(),
            "WATCHDOG_USEC": "200000",
        },
    ).start()
    daemon.ctl("pause")
    assert daemon.terminate() == 0
    wait_for(lambda: any(m.startswith("STOPPING=1") for m in messages), what="STOPPING=1")
    done.set()
    reader.join(5)

    lines = [m for m in messages if m != "WATCHDOG=1"]
    assert lines[0].startswith("READY=1\nSTATUS=serving 1 channel(s) on http://127.0.0.1:")
    assert lines[1] == "STATUS=paused (maintenance)"
    assert lines[2].startswith("STOPPING=1\nSTATUS=stopping")
    assert messages.count("WATCHDOG=1") >= 1
    assert messages.index("WATCHDOG=1") > 0  # never before READY
    assert not daemon.events("systemd.notify_failed")


def test_api_tokens(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n',
        env={"NOTIFIERD_API_TOKENS": f"{TOKEN},another-token-123456789"},
    ).start()
    url = daemon.url("/api/send/devnull")

    refused = requests.post(url, data={"message": "x"}, timeout=5)
    wrong = requests.post(
        url,
        data={"message": "x"},
        timeout=5,
        headers={"Authorization": "Bearer not-the-token-0000000"},
    )
    accepted = requests.post(
        url, data={"message": "x"}, timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert (refused.status_code, wrong.status_code, accepted.status_code) == (401, 401, 204)
    assert refused.json()["code"] == "unauthorized"
    assert daemon.ping().status_code == 204
    job = requests.get(daemon.url(f"/api/jobs/{accepted.headers['X-Job-Id']}"), timeout=5)
    assert job.status_code == 401
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 1, what="delivery")
    assert TOKEN not in daemon.log.read_text()


def test_a_short_api_token_is_a_config_error(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n', env={"NOTIFIERD_API_TOKENS": "short"}
    )
    daemon.start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(30) == 2
    assert "NOTIFIERD_API_TOKENS" in daemon.log.read_text()


def test_log_file_rotates_by_size_and_reopens_on_sighup(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "notifierd.log"
    daemon = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n',
        extra_args=[
            "--log-file",
            str(log_file),
            "--log-file-max-bytes",
            "4000",
            "--log-file-backups",
            "2",
        ],
    ).start()
    for index in range(40):
        daemon.send("devnull", f"message {index}")
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 40, what="deliveries")
    assert Path(f"{log_file}.1").exists() and Path(f"{log_file}.2").exists()
    assert not Path(f"{log_file}.3").exists()
    assert log_file.stat().st_size <= 4000

    moved = tmp_path / "logs" / "moved.log"
    log_file.rename(moved)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: log_file.exists() and "notifierd.log_reopened" in log_file.read_text(),
        what="a new log file",
    )
    size_after_move = moved.stat().st_size
    daemon.send("devnull", "after the move")
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 41, what="delivery")
    wait_for(lambda: "delivery.attempt" in log_file.read_text(), what="lines in the new file")
    assert moved.stat().st_size == size_after_move


def test_the_access_log_caps_long_targets(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon('channels:\n  devnull:\n    worker: "null"\n').start()
    names = "&".join(f"name{index}" for index in range(1000))  # names are logged, not values
    requests.post(daemon.url(f"/api/send/devnull?{names}"), data={"message": "hi"}, timeout=5)
    line = wait_for(
        lambda: [
            e
            for e in daemon.events("http.request")
            if e["target"].startswith("/api/send/devnull?name0")
        ],
        what="line",
    )[0]
    assert len(line["target"]) < 260
    assert line["target"].endswith("chars)")
    assert line["status"] == 204
