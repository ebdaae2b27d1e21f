"""notifierctl on two hosts sharing one PostgreSQL (issue 16 items 4, 7, 8, 9): `status` shows
the queue's counts once and a row per host, `nodes` lists the hosts and the one that runs the
housekeeping, `drain` makes a host stop claiming (another delivers what it accepts) until
`undrain`; `pause`, `stop`/`start`, `jobs` and `retry` given to one host act on both; the
housekeeping lease moves when its holder dies; and while PostgreSQL is down the health check
says not ready, intake answers 500, and the daemon comes back by itself."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import requests

from notifierd.store.postgres.schema import SCHEMA_VERSION
from notifierd.workers.base import hashed_rate_key
from tests.fakes.server import free_port
from tests.fakes.telegram_api import TOKEN
from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory
from tests.postgres import TempServer, create_database

CHANNEL = """
channels:
  devnull:
    worker: "null"
    retry: {delay: 0.2, max_attempts: 5}
    params:
      faults: [{kind: permanent, match: "^refuse"}]
"""


def host(make_daemon: DaemonFactory, url: str, name: str, *args: str) -> Daemon:
    return make_daemon(CHANNEL, name=name, extra_args=["--store-url", url, *args]).start()


def node_id(daemon: Daemon) -> str:
    started = daemon.event("notifierd.started", since_start=True)
    assert started is not None
    return str(started["node_id"])


def ctl_json(daemon: Daemon, *args: str) -> Any:
    result = daemon.ctl(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def nodes(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {node["node_id"]: node for node in ctl_json(daemon, "nodes")["nodes"]}


def delivered_by(daemon: Daemon) -> int:
    return len(daemon.events("null.delivered"))


def sent(daemon: Daemon, message: str) -> int:
    response = daemon.send("devnull", message)
    assert response.status_code == 204, response.text
    return int(response.headers["X-Job-Id"])


def state_of(daemon: Daemon) -> str:
    return str(daemon.channel_status("devnull")["state"])


def job_states(daemon: Daemon, job_id: int) -> list[str]:
    body = requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10).json()
    return [str(delivery["state"]) for delivery in body["deliveries"]]


def test_status_nodes_and_drain_across_two_hosts(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    a = host(make_daemon, postgres_url, "a", "--dead-after", "4")
    b = host(make_daemon, postgres_url, "b")
    started = a.event("notifierd.started")
    assert started is not None and started["schema_version"] == SCHEMA_VERSION
    me, other = node_id(a), node_id(b)
    assert b.process is not None

    # Each host's row carries what it published: B's pid and channel states reach A.
    def b_published() -> bool:
        runtime = nodes(a).get(other, {}).get("runtime", {})
        running = runtime.get("channels") == {"devnull": "running"}
        return running and b.process is not None and runtime.get("pid") == b.process.pid

    wait_for(b_published, what="b's runtime seen from a")
    status = ctl_json(a, "status")
    assert status["node_id"] == me
    assert [c["name"] for c in status["channels"]] == ["devnull"]  # the counts, once
    rows = {node["node_id"]: node for node in status["nodes"]}
    assert set(rows) == {me, other}
    assert rows[me]["this_host"] and not rows[other]["this_host"]
    assert all(0 <= node["heartbeat_age"] < 5 for node in rows.values())
    assert sum(node["leader"] for node in nodes(b).values()) == 1
    table = a.ctl("status").stdout
    assert "hosts: 2" in table and f"{me} (this host)" in table and other in table

    drained = a.ctl("drain")
    assert drained.returncode == 0 and "draining" in drained.stdout
    wait_for(lambda: nodes(b)[me]["draining"], what="b seeing a drain")
    before = delivered_by(a)
    # A still accepts; B delivers what A accepted.
    ids = [sent(a, f"through a {index}") for index in range(10)]
    wait_for(lambda: all(job_states(b, i) == ["delivered"] for i in ids), what="b delivering")
    assert delivered_by(a) == before
    assert nodes(b)[me]["leases"] == 0

    undrained = a.ctl("undrain")
    assert undrained.returncode == 0 and "claims deliveries again" in undrained.stdout
    assert not nodes(b)[me]["draining"]

    # A delivers again (A's intake wakes its own dispatcher first).
    def a_delivers() -> bool:
        sent(a, "again")
        return delivered_by(a) > before

    wait_for(a_delivers, interval=0.2, what="a delivering after undrain")


def test_pause_stop_jobs_and_retry_on_one_host_act_on_both(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    a = host(make_daemon, postgres_url, "a")
    b = host(make_daemon, postgres_url, "b")

    # stop on B: neither host delivers the channel, both still accept.
    assert b.ctl("stop", "devnull").returncode == 0
    wait_for(lambda: a.channel_status("devnull")["state"] == "stopped", what="a stopped")
    ids = [sent(a, "from a"), sent(b, "from b")]
    listed = ctl_json(b, "jobs")
    assert {job["id"] for job in listed} >= set(ids)
    assert all(job["states"] == {"queued": 1} for job in listed if job["id"] in ids)

    # pause on A: both hosts answer 503 within about a second.
    paused_at = time.monotonic()
    assert a.ctl("pause").returncode == 0
    assert a.ping().status_code == 503
    wait_for(lambda: b.ping().status_code == 503, timeout=3, what="b paused")
    assert time.monotonic() - paused_at < 2.5
    assert b.send("devnull", "while paused").status_code == 503
    # jobs on A while paused: the whole queue, nothing delivered.
    paused_jobs = ctl_json(a, "jobs")
    assert {job["id"] for job in paused_jobs} >= set(ids)
    assert all("delivered" not in job["states"] for job in paused_jobs)
    assert a.channel_status("devnull")["queued"] == 2

    # start on A while paused: both hosts take it, and still deliver nothing.
    assert a.ctl("start", "devnull").returncode == 0
    wait_for(lambda: state_of(a) == "paused", what="a: started, but paused")
    wait_for(lambda: state_of(b) == "paused", what="b: started, but paused")
    assert b.channel_status("devnull")["queued"] == 2
    # resume on B: both deliver again.
    assert b.ctl("resume").returncode == 0
    wait_for(lambda: a.ping().status_code == 204, timeout=3, what="a resumed")
    wait_for(lambda: all(job_states(b, i) == ["delivered"] for i in ids), what="delivered")

    # retry on B of a job A accepted and that failed.
    refused = sent(a, "refuse this")
    wait_for(lambda: job_states(a, refused) == ["failed"], what="the refusal")
    retried = b.ctl("retry", str(refused))
    assert retried.returncode == 0, retried.stderr
    assert f"job {refused}: requeued 1 deliveries" in retried.stdout

    def attempts() -> int:
        body = requests.get(a.url(f"/api/jobs/{refused}"), timeout=10).json()
        return len(body["deliveries"][0]["history"])

    wait_for(lambda: attempts() == 2 and job_states(a, refused) == ["failed"], what="retried")


BRIEF = """
channels:
  brief:
    worker: "null"
    ttl: 1
"""


def expired_on(daemon: Daemon) -> int:
    return sum(int(event["count"]) for event in daemon.events("deliveries.expired"))


def test_the_housekeeping_runs_on_one_host_and_moves_when_it_dies(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    a = make_daemon(BRIEF, name="a", extra_args=["--store-url", postgres_url]).start()
    wait_for(lambda: a.event("housekeeping.leading"), what="a leading")
    b = make_daemon(BRIEF, name="b", extra_args=["--store-url", postgres_url]).start()
    assert nodes(b)[node_id(a)]["leader"] and not nodes(b)[node_id(b)]["leader"]
    # A stopped channel keeps its deliveries queued until their one-second TTL ends them:
    # expired by the leader alone, counted once.
    assert b.ctl("stop", "brief").returncode == 0
    wait_for(lambda: a.channel_status("brief")["state"] == "stopped", what="a stopped too")
    for daemon in (a, b, b):
        assert daemon.send("brief", "short-lived").status_code == 204
    wait_for(lambda: expired_on(a) == 3, what="a expiring all three")
    assert expired_on(b) == 0 and b.events("housekeeping.leading") == []

    assert a.process is not None
    killed_at = time.monotonic()
    os.killpg(a.process.pid, signal.SIGKILL)
    a.process.wait(10)
    # The lease runs out 5 s after its last renewal, before A would be declared dead.
    wait_for(lambda: b.event("housekeeping.leading"), timeout=10, what="b leading")
    assert time.monotonic() - killed_at < 5 + 2
    assert b.send("brief", "short-lived").status_code == 204
    wait_for(lambda: expired_on(b) == 1, what="b expiring")
    assert b.channel_status("brief")["expired"] == 4


def test_health_is_not_ready_while_postgresql_is_down_and_the_daemon_comes_back(
    postgres_server: TempServer, make_daemon: DaemonFactory
) -> None:
    url = create_database(postgres_server.url)
    daemon = host(make_daemon, url, "a")
    pid = daemon.process.pid if daemon.process else None
    assert requests.get(daemon.url("/api/health"), timeout=10).status_code == 200
    postgres_server.stop("immediate")

    def not_ready() -> dict[str, Any] | None:
        response = requests.get(daemon.url("/api/health"), timeout=10)
        return response.json() if response.status_code == 503 else None

    body = wait_for(not_ready, timeout=15, what="health 503")
    assert body["status"] == "not_ready"
    assert body["reason"].startswith("the database")
    assert str(postgres_server.port) not in json.dumps(body)
    refused = daemon.send("devnull", "during")
    assert refused.status_code == 500 and refused.json()["code"] == "storage_error"
    assert daemon.ctl("status").returncode == 1  # says why on stderr, does not hang

    postgres_server.start()
    wait_for(
        lambda: requests.get(daemon.url("/api/health"), timeout=10).status_code == 200,
        timeout=30,
        what="health 200 again",
    )
    job_id = sent(daemon, "after")
    wait_for(lambda: job_states(daemon, job_id) == ["delivered"], timeout=30, what="delivered")
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.process.pid == pid
    assert len(daemon.events("store.unreachable")) == 1
    assert len(daemon.events("store.reachable")) == 1
    assert daemon.events("notifierd.task_died") == []


def test_status_names_the_host_that_paces_a_rate_key(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    config = (
        "channels:\n"
        "  alerts:\n"
        "    worker: telegram\n"
        f"    params: {{token: '{TOKEN}', chat_id: 42, api_url: 'http://127.0.0.1:{free_port()}'}}\n"
    )
    a = make_daemon(config, name="a", extra_args=["--store-url", postgres_url]).start()
    b = make_daemon(config, name="b", extra_args=["--store-url", postgres_url]).start()
    key = hashed_rate_key("telegram", TOKEN)

    def holders() -> list[str]:
        return [n["node_id"] for n in ctl_json(b, "status")["nodes"] if n["rate_keys"] == [key]]

    [holder] = wait_for(holders, what="one host holding the bot's key")
    assert holder in (node_id(a), node_id(b))
    assert TOKEN not in a.ctl("status").stdout
    assert key in a.ctl("status").stdout
