"""bin/notifierd on PostgreSQL (`--store-url postgresql://...`, DESIGN §9): it delivers through
the null worker, its journal lives in the database (another daemon with another state dir reads
it), and two daemons sharing one database deliver everything, even when one of them is killed
with its deliveries in hand."""

from __future__ import annotations

import os
import signal
import time

import requests

from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

NULL_CHANNEL = """
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.2, max_attempts: 5}
"""

SLOW_CHANNEL = """
channels:
  slow:
    worker: "null"
    processes: 2
    prefetch: 1
    params: {send_seconds: 0.3}
"""


def on_postgres(make_daemon: DaemonFactory, config: str, url: str, name: str) -> Daemon:
    return make_daemon(config, name=name, extra_args=["--store-url", url])


def job(daemon: Daemon, job_id: int) -> dict[str, object]:
    response = requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def states(daemon: Daemon, job_id: int) -> list[str]:
    deliveries = job(daemon, job_id)["deliveries"]
    assert isinstance(deliveries, list)
    return [str(delivery["state"]) for delivery in deliveries]


def test_a_daemon_on_postgresql_delivers_through_the_null_worker(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    daemon = on_postgres(make_daemon, NULL_CHANNEL, postgres_url, "a").start()
    started = daemon.event("notifierd.started")
    assert started is not None and started["database"] == postgres_url
    texts = ["Привет, мир!\nВторая строка — «кавычки», 100%.", "second", "third"]
    ids = []
    for text in texts:
        response = daemon.send("devnull", text)
        assert response.status_code == 204, response.text
        ids.append(int(response.headers["X-Job-Id"]))
    wait_for(lambda: len(daemon.events("null.delivered")) == 3, what="three deliveries")
    assert sorted(e["length"] for e in daemon.events("null.delivered")) == sorted(
        len(text) for text in texts
    )
    wait_for(
        lambda: all(states(daemon, job_id) == ["delivered"] for job_id in ids),
        what="the outcomes stored",
    )
    assert job(daemon, ids[0])["message"] == texts[0]
    status = daemon.channel_status("devnull")
    assert (status["delivered"], status["queued"], status["in_flight"]) == (3, 0, 0)
    assert daemon.terminate() == 0

    # The journal is in the database, not in the state dir: another daemon, with a state dir
    # of its own, sees the same jobs.
    other = on_postgres(make_daemon, NULL_CHANNEL, postgres_url, "b").start()
    assert [states(other, job_id) for job_id in ids] == [["delivered"]] * 3
    assert other.channel_status("devnull")["delivered"] == 3


def test_two_daemons_share_the_queue_and_survive_the_death_of_one(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    a = on_postgres(make_daemon, SLOW_CHANNEL, postgres_url, "a").start()
    b = on_postgres(make_daemon, SLOW_CHANNEL, postgres_url, "b").start()
    ids = []
    for index in range(40):
        host = a if index % 2 else b
        response = host.send("slow", f"message {index}")
        assert response.status_code == 204, response.text
        ids.append(int(response.headers["X-Job-Id"]))
    # Both hosts deliver (the queue is shared), and A holds deliveries when it dies.
    wait_for(lambda: a.events("null.delivered") and b.events("null.delivered"), what="both")
    wait_for(lambda: a.channel_status("slow")["in_flight"] > 0, what="leases held by a")
    assert a.process is not None
    killed_at = time.monotonic()
    os.killpg(a.process.pid, signal.SIGKILL)  # the parent and its workers: a host dies
    a.process.wait(10)

    # B finishes everything: A's leases come back once A is declared dead (10 s).
    wait_for(
        lambda: all(states(b, job_id) == ["delivered"] for job_id in ids),
        timeout=60,
        what="every job delivered by b",
    )
    recovered = time.monotonic() - killed_at
    assert recovered < 10 + 2 + 5, recovered  # dead_after, the reaper's period, the sends
    delivered = [e["delivery_id"] for e in a.events("null.delivered")]
    delivered += [e["delivery_id"] for e in b.events("null.delivered")]
    assert set(delivered) == set(range(1, 41))
    # Sent twice at most what A had in hand: its two workers, one delivery each (prefetch 1).
    assert len(delivered) - len(set(delivered)) <= 2
    status = b.channel_status("slow")
    assert (status["delivered"], status["queued"], status["in_flight"]) == (40, 0, 0)
