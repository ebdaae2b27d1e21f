"""`notifierctl pause` on one of three hosts under load (issue 16, "Must be shown by tests"):
every host answers 503 within a second, and no host delivers anything it had not leased before
the pause while a backlog waits; `notifierctl resume` on another host, and all three take
messages again and deliver everything."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

from tests.cluster.cluster import Answer, Cluster, Database, Load, all_delivered, stays
from tests.cluster.conftest import ClusterFactory
from tests.cluster.endpoint import Endpoint
from tests.harness import Daemon, wait_for

BACKLOG = 100
#: How soon every host follows a switch set on another (DESIGN §9).
FOLLOW_SECONDS = 1.0


def test_pause_on_one_host_holds_every_host_and_resume_on_another_releases_them(
    postgres_url: str, make_cluster: ClusterFactory, endpoint: Endpoint
) -> None:
    endpoint.answer_after(0.1)
    cluster = make_cluster(postgres_url, endpoint.channels)
    hosts = cluster.start(3)
    database = Database(postgres_url)
    accepted = [_send(hosts[index % 3], f"backlog-{index}") for index in range(BACKLOG)]
    load = Load(hosts, "hook", per_second=25).start()
    try:
        wait_for(lambda: len({s.host for s in endpoint.sends()}) == 3, what="all three deliver")
        # From the moment the flag is committed every claim sees it: nothing is leased after,
        # so whatever reaches the remote later was leased already - but for a claim that
        # began before the commit and ends after it (hence a second look, a moment later).
        paused_at, leased, read_at = _switch(hosts[0], "pause", database)
        for host in hosts:
            wait_for(_refusing(host), timeout=5, what=f"{Cluster.name(host)} answering 503")
        wait_for(lambda: not database.leased(), timeout=10, what="what was in hand finished")
        sent = endpoint.count()
        assert database.by_state().get("queued", 0) > 0, "no backlog: the pause shows nothing"
        stays(
            lambda: endpoint.count() == sent and not database.leased(),
            seconds=3 * FOLLOW_SECONDS,
            what="a delivery while paused",
        )
        late = [s for s in endpoint.sends() if s.at > read_at and s.delivery not in leased]
        assert late == [], f"sent after the pause without a lease from before it: {late}"
        for host in hosts:
            assert host.send("hook", "while paused").status_code == 503

        resuming_at = time.monotonic()
        resumed_at, _, _ = _switch(hosts[2], "resume", database)
        wait_for(lambda: endpoint.count() > sent, timeout=10, what="deliveries again")
        wait_for(
            lambda: all(_answered_after(load, h, resumed_at + FOLLOW_SECONDS) for h in hosts),
            timeout=10,
            what="requests answered after the resume",
        )
    finally:
        load.stop()
    answers = load.snapshot()
    assert {a.status for a in answers} <= {204, 503}, {a.status for a in answers}
    # Per host: how long after the pause it still took a message, and after the resume it
    # still refused one (the last such request's sending time; the ctl's return is the
    # moment the switch was committed, within milliseconds).
    lags = {
        Cluster.name(host): (
            _lag(answers, host, 204, paused_at, resuming_at),
            _lag(answers, host, 503, resumed_at, time.monotonic()),
        )
        for host in hosts
    }
    print(f"\nseconds each host answered as before, after pause and after resume: {lags}")
    for name, (after_pause, after_resume) in lags.items():
        assert after_pause < FOLLOW_SECONDS, f"{name} took messages {after_pause:.2f} s paused"
        assert after_resume < FOLLOW_SECONDS, f"{name} refused {after_resume:.2f} s resumed"
    accepted += load.accepted
    wait_for(all_delivered(database, accepted), timeout=60, what="every 204'd job delivered")


def _send(host: Daemon, message: str) -> int:
    response = host.send("hook", message)
    assert response.status_code == 204, response.text
    return int(response.headers["X-Job-Id"])


def _switch(host: Daemon, verb: str, database: Database) -> tuple[float, set[int], float]:
    """`notifierctl VERB` on `host`. Returns when the switch was seen committed (the ctl's own
    start-up and exit are not the daemons' to answer for), what was leased then or a moment
    later, and when that was read."""
    wanted = verb == "pause"

    def committed() -> tuple[bool, set[int]] | None:
        snapshot = database.paused()
        return snapshot if snapshot[0] == wanted else None

    done: list[subprocess.CompletedProcess[str]] = []
    ctl = threading.Thread(target=lambda: done.append(host.ctl(verb)))
    ctl.start()
    try:
        seen = wait_for(committed, timeout=30, interval=0.005, what=f"{verb} committed")
        seen_at = time.monotonic()
        leased = seen[1] | database.leased()
        read_at = time.monotonic()
    finally:
        ctl.join(30)
    assert done and done[0].returncode == 0, done
    return seen_at, leased, read_at


def _refusing(host: Daemon) -> Callable[[], bool]:
    return lambda: host.ping().status_code == 503


def _lag(answers: list[Answer], host: Daemon, status: int, since: float, until: float) -> float:
    name = Cluster.name(host)
    sent = [a.sent_at for a in answers if a.host == name and since <= a.sent_at < until]
    assert sent, f"no request to {name} in the window"
    late = [
        a.sent_at
        for a in answers
        if a.host == name and a.status == status and since <= a.sent_at < until
    ]
    return max(late, default=since) - since


def _answered_after(load: Load, host: Daemon, moment: float) -> list[Answer]:
    name = Cluster.name(host)
    return [a for a in load.snapshot() if a.host == name and a.sent_at >= moment]
