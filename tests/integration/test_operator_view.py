"""The operator's view with real processes: notifierctl in job ids (retry, jobs, --version),
a stopped channel remembered across restarts and shown through maintenance, the health
endpoint, and the metrics an operator alerts on."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import requests
from prometheus_client.parser import text_string_to_metric_families

from notifierd import __version__
from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory

TOKEN = "token-for-tests-5f1c0a9e7b"
TWO_RECIPIENTS = """
channels:
  pair:
    worker: "null"
    retry: {{delay: 0.1, max_attempts: 2, jitter: 0}}
    params:
      recipients: ["first", "second"]
      faults: {faults}
  other:
    worker: "null"
"""


def states_of_job(daemon: Daemon, job_id: int) -> list[str]:
    return sorted(d["state"] for d in daemon.deliveries() if d["job_id"] == job_id)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_retry_by_job_id_requeues_both_deliveries(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(TWO_RECIPIENTS.format(faults='[{kind: temporary, match: "^flaky"}]'))
    daemon.start()
    sent = daemon.send("pair", "flaky news")
    job_id = int(sent.headers["X-Job-Id"])
    assert daemon.send("other", "unrelated").status_code == 204
    wait_for(lambda: states_of_job(daemon, job_id) == ["dead", "dead"], what="both dead")
    assert daemon.terminate() == 0
    daemon.config.write_text(TWO_RECIPIENTS.format(faults="[]"))  # the operator fixed the cause
    daemon.start()

    retried = daemon.ctl("retry", str(job_id), str(job_id))  # named twice, retried once
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"job {job_id}: requeued 2 deliveries"
    wait_for(
        lambda: states_of_job(daemon, job_id) == ["delivered", "delivered"], what="redelivered"
    )

    again = daemon.ctl("retry", str(job_id))
    assert again.returncode == 1
    assert f"job {job_id}: nothing to retry (2 delivered)" in again.stderr
    unknown = daemon.ctl("retry", "987654")
    assert unknown.returncode == 1
    assert "job 987654: no such job" in unknown.stderr
    # Several ids: each is reported; one that fails makes the exit status 1.
    mixed = daemon.ctl("retry", str(job_id), "987654")
    assert mixed.returncode == 1
    assert f"job {job_id}:" in mixed.stderr and "job 987654:" in mixed.stderr


def test_retry_by_delivery_id_keeps_its_meaning(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(TWO_RECIPIENTS.format(faults='[{kind: permanent, match: "^bad"}]'))
    daemon.start()
    job_id = int(daemon.send("pair", "bad news").headers["X-Job-Id"])
    wait_for(lambda: states_of_job(daemon, job_id) == ["failed", "failed"], what="both failed")
    first = min(d["id"] for d in daemon.deliveries() if d["job_id"] == job_id)

    retried = daemon.ctl("retry", "--delivery", str(first))
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"delivery {first}: requeued 1 deliveries"
    # Still refused, but it was handed out again: two attempts for it, one for the other.
    wait_for(
        lambda: (
            sorted(d["attempts"] for d in daemon.deliveries(state="failed")) == [1, 1]
            and len(daemon.events("delivery.attempt")) == 3
        ),
        what="the retried attempt",
    )
    by_channel = daemon.ctl("retry", "--channel", "pair", "--state", "failed")
    assert by_channel.returncode == 0 and "pair: requeued 2 failed deliveries" in by_channel.stdout
    nothing = daemon.ctl("retry", "--channel", "other")
    assert nothing.returncode == 1 and "other: nothing to retry" in nothing.stderr
    assert daemon.ctl("retry").returncode == 2


def test_jobs_lists_one_row_per_job_and_deliveries_on_demand(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(TWO_RECIPIENTS.format(faults='[{kind: permanent, match: "^bad"}]'))
    daemon.start()
    good = int(daemon.send("pair", "good").headers["X-Job-Id"])
    bad = int(daemon.send("pair", "bad").headers["X-Job-Id"])
    wait_for(lambda: len(daemon.deliveries(state="failed")) == 2, what="the bad job failed")
    wait_for(lambda: len(daemon.deliveries(state="delivered")) == 2, what="the good delivered")

    listing = daemon.ctl("jobs")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:5] == ["JOB_ID", "CHANNEL", "CREATED", "UPDATED", "DELIVERIES"]
    assert [row.split()[0] for row in rows] == [str(bad), str(good)]  # newest first
    assert "2 failed" in rows[0] and "injected permanent refusal" in rows[0]
    assert "2 delivered" in rows[1]
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")
    assert len(iso.findall(rows[0])) == 2

    as_json = json.loads(daemon.ctl("jobs", "--json", "--state", "failed").stdout)
    assert [(j["id"], j["states"]) for j in as_json] == [(bad, {"failed": 2})]

    deliveries = daemon.ctl("jobs", "--deliveries").stdout.splitlines()
    assert deliveries[0].split()[:3] == ["ID", "JOB_ID", "CHANNEL"]
    assert len(deliveries) == 5
    assert all(iso.search(line) for line in deliveries[1:])
    bad_state = daemon.ctl("jobs", "--state", "nonsense")
    assert bad_state.returncode == 2 and "invalid choice" in bad_state.stderr


def test_version_and_the_choices_in_help() -> None:
    version = subprocess.run(
        [str(BIN / "notifierctl"), "--version"], capture_output=True, text=True, check=False
    )
    assert (version.returncode, version.stdout.strip()) == (0, f"notifierctl {__version__}")
    jobs_help = subprocess.run(
        [str(BIN / "notifierctl"), "jobs", "--help"], capture_output=True, text=True, check=False
    ).stdout
    assert "one of: queued, leased, delivered, failed, dead, expired" in " ".join(jobs_help.split())
    daemon_help = " ".join(
        subprocess.run(
            [str(BIN / "notifierd"), "--help"], capture_output=True, text=True, check=False
        ).stdout.split()
    )
    assert "one of: debug, info, warning, error" in daemon_help
    assert "one of: auto, console, json" in daemon_help


def test_a_stop_is_kept_across_restarts_and_shows_through_maintenance(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(TWO_RECIPIENTS.format(faults="[]")).start()
    stopped = daemon.ctl("stop", "other")
    assert stopped.returncode == 0, stopped.stderr
    assert "stays stopped across restarts" in stopped.stdout
    assert "notifierctl start other" in stopped.stdout
    assert daemon.ctl("pause").returncode == 0
    assert daemon.channel_status("other")["state"] == "stopped"
    assert daemon.channel_status("pair")["state"] == "paused"

    assert daemon.terminate() == 0
    daemon.start()
    started = daemon.event("notifierd.started", since_start=True)
    assert started is not None and started["stopped_channels"] == ["other"]
    table = daemon.ctl("status").stdout
    assert re.search(r"^other\s+null\s+stopped\b", table, re.MULTILINE), table
    assert re.search(r"^pair\s+null\s+paused\b", table, re.MULTILINE), table

    assert daemon.ctl("resume").returncode == 0
    assert daemon.channel_status("other")["state"] == "stopped"
    assert daemon.ctl("start", "other").returncode == 0
    assert daemon.terminate() == 0
    daemon.start()
    started = daemon.event("notifierd.started", since_start=True)
    assert started is not None and started["stopped_channels"] == []


def test_health_answers_while_paused_and_ping_does_not(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(TWO_RECIPIENTS.format(faults="[]")).start()
    assert daemon.ctl("stop", "other").returncode == 0
    wait_for(lambda: running(daemon, "pair"), what="pair running")
    healthy = requests.get(daemon.url("/api/health"), timeout=5)
    assert healthy.status_code == 200
    assert healthy.json() == {
        "status": "ok",
        "paused": False,
        "version": __version__,
        "channels": {"pair": "running", "other": "stopped"},
    }

    assert daemon.ctl("pause").returncode == 0
    assert daemon.ping().status_code == 503
    paused = requests.get(daemon.url("/api/health"), timeout=5)
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused" and paused.json()["paused"] is True
    assert paused.json()["channels"] == {"pair": "paused", "other": "stopped"}


def running(daemon: Daemon, channel: str) -> str | None:
    state = str(daemon.channel_status(channel)["state"])
    return state if state == "running" else None


def test_health_needs_a_token_exactly_when_ping_does(make_daemon: DaemonFactory) -> None:
    open_probes = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n',
        name="open",
        env={"NOTIFIERD_API_TOKENS": TOKEN},
    ).start()
    assert requests.get(open_probes.url("/api/health"), timeout=5).status_code == 200

    guarded = make_daemon(
        'channels:\n  devnull:\n    worker: "null"\n',
        name="guarded",
        env={"NOTIFIERD_API_TOKENS": TOKEN, "NOTIFIERD_AUTH_PING": "true"},
    ).start()
    refused = requests.get(guarded.url("/api/health"), timeout=5)
    assert refused.status_code == 401
    authorized = requests.get(
        guarded.url("/api/health"), timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert authorized.status_code == 200 and authorized.json()["status"] == "ok"


def test_the_operators_metrics(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(TWO_RECIPIENTS.format(faults="[]"), extra_args=["--no-access-log"])
    daemon.start()
    wait_for(lambda: running(daemon, "pair"), what="pair running")
    assert daemon.ctl("stop", "other").returncode == 0
    for _ in range(3):
        assert daemon.send("pair", "hello").status_code == 204
    assert daemon.send("nowhere", "hello").status_code == 404
    for path in ("/random/path/1", "/random/path/2"):
        assert requests.get(daemon.url(path), timeout=5).status_code == 404
    assert requests.get(daemon.url("/api/health"), timeout=5).status_code == 200
    # Refused by aiohttp before any route: counted too, without an error in the log.
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.0 400")
    wait_for(lambda: daemon.channel_status("pair")["delivered"] == 6, what="deliveries")

    found = samples(requests.get(daemon.url("/metrics"), timeout=5).text)

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert value("notifierd_build_info", version=__version__) == 1
    assert value("notifierd_channel_state", channel="pair", state="running") == 1
    assert value("notifierd_channel_state", channel="pair", state="stopped") == 0
    assert value("notifierd_channel_state", channel="other", state="stopped") == 1
    for state in ("running", "paused", "fatal", "misconfigured"):
        assert value("notifierd_channel_state", channel="other", state=state) == 0
    assert value("process_cpu_seconds_total") > 0
    assert value("process_resident_memory_bytes") > 0
    send = "/api/send/{channel}"
    assert value("notifierd_http_responses_total", route=send, status="204") == 3
    assert value("notifierd_http_responses_total", route=send, status="404") == 1
    # Unmatched paths share one label: a scan of random paths adds no series.
    assert value("notifierd_http_responses_total", route="unmatched", status="404") == 2
    assert value("notifierd_http_responses_total", route="/api/health", status="200") == 1
    assert value("notifierd_http_responses_total", route="unmatched", status="400") == 1
    assert not daemon.events("Unhandled exception")
    routes = {dict(labels).get("route") for name, labels in found if "http_responses" in name}
    assert routes == {send, "unmatched", "/api/health"}
    assert value("notifierd_deliveries", channel="pair", state="delivered") == 6
