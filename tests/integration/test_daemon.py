"""Real-process tests of the core daemon: bin/notifierd on a free port, a temporary state dir,
the null worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from datetime import datetime
from pathlib import Path

from notifierd.store.sqlite import SqliteStore
from tests.harness import BIN, pids_alive, wait_for
from tests.integration.conftest import DaemonFactory

NULL_CHANNEL = """
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.2, max_attempts: 5}
"""


def delivered_ids(daemon_events: list[dict[str, object]]) -> list[object]:
    return [event["delivery_id"] for event in daemon_events]


def timestamp(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def test_delivers_cyrillic_multiline_text_through_the_null_worker(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    text = "Привет, мир!\nВторая строка — «кавычки», 100%."

    response = daemon.send("devnull", text)

    assert response.status_code == 204
    assert response.content == b""
    job_id = int(response.headers["X-Job-Id"])
    wait_for(lambda: daemon.events("null.delivered"), what="a delivery")
    [event] = daemon.events("null.delivered")
    assert event["length"] == len(text)
    assert event["channel"] == "devnull"
    assert event["attempt"] == 1
    # The worker logs its line before the parent has committed the outcome it sent back.
    wait_for(lambda: daemon.deliveries()[0]["state"] == "delivered", what="the outcome stored")
    [delivery] = daemon.deliveries()
    assert delivery["job_id"] == job_id
    assert daemon.ping().status_code == 204


def test_worker_processes_are_titled_and_count_per_channel(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon('channels:\n  devnull:\n    worker: "null"\n    processes: 2\n').start()
    pids = wait_for(
        lambda: (
            len(daemon.channel_status("devnull")["pids"]) == 2
            and daemon.channel_status("devnull")["pids"]
        ),
        what="two workers",
    )

    def titles() -> list[bytes]:
        return sorted(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in pids)

    # The title is set by the child once it runs.
    wait_for(
        lambda: titles() == [b"notifierd: devnull worker 0", b"notifierd: devnull worker 1"],
        what="the process titles",
    )


def test_a_delayed_message_is_held_until_it_is_due(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    daemon.send("devnull", "now")
    wait_for(lambda: daemon.events("null.delivered"), what="the immediate message")
    accepted = daemon.events("null.delivered")[0]

    assert daemon.send("devnull", "later", delay="2").status_code == 204
    assert daemon.channel_status("devnull")["delayed"] == 1

    wait_for(lambda: len(daemon.events("null.delivered")) == 2, timeout=10, what="the delayed")
    later = daemon.events("null.delivered")[1]
    sent_at = daemon.events("http.request")[-1]
    assert timestamp(later) - timestamp(sent_at) >= 1.9
    assert timestamp(later) > timestamp(accepted)


def test_pause_is_kept_across_a_restart_and_resume_delivers(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    # Delayed 4 s so that the pause (a notifierctl process, slow to start on a loaded machine)
    # comes before the message is due.
    assert daemon.send("devnull", "held back", delay="4").status_code == 204
    pids = wait_for(lambda: daemon.channel_status("devnull")["pids"], what="a worker")

    paused = daemon.ctl("pause")
    assert paused.returncode == 0, paused.stderr

    for response in (daemon.ping(), daemon.send("devnull", "refused")):
        assert response.status_code == 503
        assert response.content == b""
    # The workers' loops end and their processes exit.
    wait_for(lambda: not pids_alive(pids), what="the worker to exit")
    # The message falls due while paused and is not handed out.
    wait_for(lambda: daemon.channel_status("devnull")["queued"] == 1, what="due while paused")
    status = daemon.channel_status("devnull")
    assert (status["state"], status["pids"], status["delivered"]) == ("paused", [], 0)

    assert daemon.terminate() == 0
    daemon.start()

    assert daemon.ping().status_code == 503
    assert daemon.channel_status("devnull")["state"] == "paused"
    assert daemon.channel_status("devnull")["delivered"] == 0
    table = daemon.ctl("status")
    assert "maintenance: on" in table.stdout and "paused" in table.stdout

    assert daemon.ctl("resume").returncode == 0
    assert daemon.ping().status_code == 204
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 1, what="delivery")
    as_json = json.loads(daemon.ctl("status", "--json").stdout)
    assert as_json["paused"] is False
    assert as_json["channels"][0]["delivered"] == 1


def test_kill_9_of_the_parent_loses_nothing(make_daemon: DaemonFactory) -> None:
    slow = """
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.2}
    prefetch: 1
    params:
      faults: [{kind: hang, match: "^in flight", seconds: 60}]
"""
    daemon = make_daemon(slow).start()
    assert daemon.send("devnull", "in flight").status_code == 204
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    for index in range(5):
        assert daemon.send("devnull", f"delayed {index}", delay="1").status_code == 204
    for index in range(5):
        assert daemon.send("devnull", f"queued {index}").status_code == 204
    children = daemon.channel_status("devnull")["pids"]

    daemon.kill()

    # The workers notice their parent is gone and end: no orphans.
    wait_for(lambda: not pids_alive(children), what="orphaned workers to exit")

    daemon.config.write_text(NULL_CHANNEL)
    daemon.start()
    wait_for(
        lambda: daemon.channel_status("devnull")["delivered"] == 11,
        timeout=20,
        what="all 11 deliveries",
    )
    status = daemon.channel_status("devnull")
    assert (status["queued"], status["delayed"], status["in_flight"]) == (0, 0, 0)


def test_a_killed_worker_is_replaced_and_its_delivery_done(make_daemon: DaemonFactory) -> None:
    config = """
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.2}
    params:
      faults: [{kind: hang, times: 1, seconds: 60}]
"""
    daemon = make_daemon(config).start()
    daemon.send("devnull", "first attempt hangs")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    [old_pid] = daemon.channel_status("devnull")["pids"]

    os.kill(old_pid, signal.SIGKILL)

    new_pids = wait_for(
        lambda: [p for p in daemon.channel_status("devnull")["pids"] if p != old_pid],
        what="a replacement worker",
    )
    assert new_pids
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 1, what="delivery")
    [delivery] = daemon.deliveries()
    assert delivery["attempts"] == 2
    assert daemon.event("worker.died") is not None


def test_sigterm_stops_cleanly_with_exit_code_0(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(NULL_CHANNEL).start()
    daemon.send("devnull", "hello")
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 1, what="delivery")
    children = daemon.channel_status("devnull")["pids"]

    assert daemon.terminate() == 0

    assert not pids_alive(children)
    assert daemon.event("notifierd.stopped") is not None
    assert not daemon.socket.exists()


def test_sigterm_answers_503_while_draining(make_daemon: DaemonFactory) -> None:
    config = """
channels:
  devnull:
    worker: "null"
    prefetch: 1
    params: {send_seconds: 1.5}
"""
    daemon = make_daemon(config).start()
    daemon.send("devnull", "slow")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)

    wait_for(lambda: daemon.ping().status_code == 503, what="503 while stopping")
    assert daemon.process.wait(20) == 0
    # The slow delivery was finished within the shutdown timeout, not abandoned.
    assert daemon.events("null.delivered")


def test_a_config_error_exits_before_binding_any_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "channels.yaml"
    config.write_text('channels:\n  alerts:\n    worker: "null"\n    retires: 3\n')

    result = subprocess.run(
        [
            str(BIN / "notifierd"),
            "--config",
            str(config),
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert f"{config}: channels.alerts.retires: unknown key" in result.stderr
    assert not (tmp_path / "state").exists()


def test_check_config_of_the_shipped_example() -> None:
    result = subprocess.run(
        [str(BIN / "notifierd"), "check-config", "--config", "etc/channels.yaml"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=BIN.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "devnull" in result.stdout


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(
    make_daemon: DaemonFactory,
) -> None:
    first = make_daemon(NULL_CHANNEL).start()
    assert first.process is not None
    second = make_daemon(NULL_CHANNEL, name="second")
    second.state_dir = first.state_dir

    second.start(wait=False)

    assert second.process is not None
    assert second.process.wait(30) == 1
    assert f"another notifierd (pid {first.process.pid})" in second.log.read_text()
    assert first.ping().status_code == 204  # the first one is untouched


def test_a_second_sigterm_stops_without_waiting_for_the_workers(
    make_daemon: DaemonFactory,
) -> None:
    config = """
channels:
  devnull:
    worker: "null"
    params:
      faults: [{kind: hang, seconds: 60}]
"""
    daemon = make_daemon(config, extra_args=["--shutdown-timeout", "60"]).start()
    daemon.send("devnull", "stuck")
    wait_for(lambda: daemon.channel_status("devnull")["in_flight"] == 1, what="in flight")
    assert daemon.process is not None

    daemon.process.send_signal(signal.SIGTERM)
    wait_for(lambda: daemon.event("notifierd.stopping"), what="draining")
    daemon.process.send_signal(signal.SIGTERM)

    assert daemon.process.wait(20) == 0
    assert daemon.event("notifierd.stopping_now") is not None
    daemon.config.write_text(NULL_CHANNEL)
    daemon.start()
    wait_for(lambda: daemon.channel_status("devnull")["delivered"] == 1, what="delivered")


def in_process_group(pgid: int) -> list[int]:
    """The live processes of process group `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_a_start_that_fails_after_the_channels_started_leaves_no_worker(
    make_daemon: DaemonFactory,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = 'channels:\n  devnull:\n    worker: "null"\n    processes: 2\n'
        # A long shutdown timeout: the workers, still starting, end by the sentinel.
        daemon = make_daemon(config, extra_args=["--port", str(port), "--shutdown-timeout", "30"])
        process = daemon.start(wait=False).process
        assert process is not None
        code = process.wait(60)

    assert code == 1
    failed = daemon.event("notifierd.failed")
    assert failed is not None and "address already in use" in str(failed["error"]).lower()
    workers = [int(str(event["pid"])) for event in daemon.events("worker.started")]
    assert len(workers) == 2  # the channel's workers had started before the port was tried
    # Stopped by the daemon before it exited, not only by their dying with it.
    ended = daemon.events("worker.stopped") + daemon.events("worker.died")
    assert sorted(int(str(event["pid"])) for event in ended) == sorted(workers)
    assert not pids_alive(workers)
    # Nothing of the daemon's is left in its session (multiprocessing's helpers included).
    wait_for(lambda: not in_process_group(process.pid), what="no process left")
    assert daemon.event("notifierd.started") is None
    assert not daemon.socket.exists()


def set_flags_elsewhere(database: Path, flags: dict[str, str | None]) -> None:
    """Another writer of the daemon's Store (as a second daemon sharing it would be)."""

    async def write() -> None:
        other = SqliteStore(database)
        await other.open()
        try:
            for name, value in flags.items():
                await other.set_flag(name, value)
        finally:
            await other.close()

    asyncio.run(write())


def test_switches_set_by_another_writer_are_followed(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(
        'channels:\n  alpha:\n    worker: "null"\n  beta:\n    worker: "null"\n'
    ).start()
    database = daemon.state_dir / "notifierd.db"
    beta = wait_for(lambda: daemon.channel_status("beta")["pids"], what="beta's worker")

    set_flags_elsewhere(database, {"stopped:beta": "1", "paused": "1"})
    wait_for(lambda: daemon.ping().status_code == 503, timeout=5, what="paused")
    assert daemon.channel_status("beta")["state"] == "stopped"
    assert daemon.channel_status("alpha")["state"] == "paused"
    wait_for(lambda: not pids_alive(beta), what="beta's worker to end")
    assert daemon.event("notifierd.paused") is not None

    set_flags_elsewhere(database, {"paused": None})
    wait_for(lambda: daemon.ping().status_code == 204, timeout=5, what="resumed")
    assert daemon.send("alpha", "after the resume").status_code == 204
    wait_for(lambda: daemon.channel_status("alpha")["delivered"] == 1, what="delivered")
    assert daemon.channel_status("beta")["state"] == "stopped"
    assert daemon.ctl("start", "beta").returncode == 0
    wait_for(lambda: daemon.channel_status("beta")["pids"], what="beta started again")
