"""bin/notifierd while its PostgreSQL restarts under load (issue 16, "The database going away"):
requests during the outage answer 500 storage_error, never a 204 for a job that was not
committed; every 204'd job is delivered once the database is back, and intake and delivery
resume by themselves, without a restart of the daemon."""

from __future__ import annotations

import threading
import time

import requests

from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory
from tests.postgres import TempServer, create_database

CHANNEL = """
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.2, max_attempts: 50}
"""


class Load:
    """Posts messages one after another from a thread, recording every answer."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.accepted: list[int] = []
        self.refused: list[tuple[int, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        index = 0
        while not self.stopping.is_set():
            index += 1
            try:
                response = session.post(
                    self.daemon.url("/api/send/devnull"), data={"message": f"m{index}"}, timeout=30
                )
            except requests.RequestException as exc:
                self.refused.append((0, str(exc)))
                continue
            if response.status_code == 204:
                self.accepted.append(int(response.headers["X-Job-Id"]))
            else:
                self.refused.append((response.status_code, response.text))
            time.sleep(0.005)


def delivered(daemon: Daemon, job_ids: list[int]) -> bool:
    states = daemon.call("deliveries", limit=100000)
    done = {d["job_id"] for d in states if d["state"] == "delivered"}
    return set(job_ids) <= done


def test_a_postgresql_restart_under_load_loses_nothing(
    postgres_server: TempServer, make_daemon: DaemonFactory
) -> None:
    url = create_database(postgres_server.url)
    daemon = make_daemon(CHANNEL, extra_args=["--store-url", url]).start()
    load = Load(daemon)
    load.thread.start()
    try:
        wait_for(lambda: len(load.accepted) >= 50, what="load flowing")
        postgres_server.stop("immediate")  # a crash, not a clean shutdown
        wait_for(lambda: len(load.refused) >= 5, what="refusals during the outage")
        during = len(load.accepted)
        time.sleep(0.5)
        postgres_server.start()
        wait_for(lambda: len(load.accepted) >= during + 50, timeout=60, what="intake resuming")
    finally:
        load.stopping.set()
        load.thread.join(60)
    assert load.refused, "the outage was never seen"
    for status, body in load.refused:
        assert status == 500 and "storage_error" in body, (status, body)
    # Every job answered 204 is delivered, by this same daemon process, without a restart.
    wait_for(lambda: delivered(daemon, load.accepted), timeout=60, what="every 204 delivered")
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.ping().status_code == 204
    health = requests.get(daemon.url("/api/health"), timeout=10)
    assert health.status_code == 200
