"""PostgreSQL restarted under load through three hosts (issue 16, "Must be shown by tests", and
"The database going away"): during the outage every host answers 500 `storage_error`, never a
204 for a job it could not commit; once the server is back every host takes messages and
delivers again by itself, without a restart, and every job answered 204 is delivered.

The server is the test's own (`pg_ctl` on a temporary data directory): stopped, held down until
every host has refused a request, then started - a restart with an outage long enough to be
seen. `fast` is `pg_ctl restart`'s own mode (sessions terminated); `immediate` is a crash."""

from __future__ import annotations

import time

import pytest
import requests

from tests.cluster.cluster import Cluster, Database, Load, all_delivered
from tests.cluster.conftest import ClusterFactory
from tests.cluster.endpoint import Endpoint
from tests.harness import Daemon, wait_for
from tests.postgres import TempServer, create_database

#: The channel's lease, shorter than the webhook's default (120 s): an outcome that could not
#: be written while the server was down is not written later, and the delivery goes out again
#: only once its lease lapses (the backstop; see the runner's `_apply`).
LEASE = 15.0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_restart_under_load_loses_nothing_and_every_host_resumes(
    mode: str, postgres_server: TempServer, make_cluster: ClusterFactory, endpoint: Endpoint
) -> None:
    url = create_database(postgres_server.url)
    cluster = make_cluster(url, lambda host: endpoint.channels(host, lease=LEASE))
    hosts = cluster.start(3)
    names = [Cluster.name(host) for host in hosts]
    load = Load(hosts, "hook", per_second=20).start()
    try:
        wait_for(lambda: {s.host for s in endpoint.sends()} == set(names), what="all deliver")
        postgres_server.stop(mode)
        stopped_at = time.monotonic()
        wait_for(
            lambda: all(_answered(load, name, 500, stopped_at) for name in names),
            timeout=30,
            what="every host refusing during the outage",
        )
        postgres_server.start()
        started_at = time.monotonic()
        wait_for(
            lambda: all(len(_answered(load, name, 204, started_at)) >= 20 for name in names),
            timeout=60,
            what="every host taking messages again",
        )
        wait_for(
            lambda: {s.host for s in endpoint.sends() if s.at > started_at} == set(names),
            timeout=60,
            what="every host delivering again",
        )
    finally:
        load.stop()
    answers = load.snapshot()
    refused = [a for a in answers if a.status != 204]
    assert refused, "the outage was never seen"
    for answer in refused:
        assert answer.status == 500 and "storage_error" in answer.body, answer
        # Refused while the server was down, or reconnecting just after.
        assert stopped_at - 1 <= answer.sent_at <= started_at + 10, answer
    wait_for(
        all_delivered(Database(url), load.accepted),
        timeout=LEASE + 30,
        what="every 204'd job delivered",
    )
    for host in hosts:
        _healthy(host)
    outage = max(a.answered_at for a in refused) - min(a.sent_at for a in refused)
    print(
        f"\n{mode}: {len(load.accepted)} accepted, {len(refused)} refused over {outage:.2f} s;"
        f" {len(endpoint.duplicates())} sent twice"
    )


def _answered(load: Load, host: str, status: int, since: float) -> list[object]:
    return [
        a for a in load.snapshot() if a.host == host and a.status == status and a.sent_at > since
    ]


def _healthy(host: Daemon) -> None:
    """Still the same process, ready, taking messages."""
    assert host.process is not None and host.process.poll() is None
    assert requests.get(host.url("/api/health"), timeout=10).status_code == 200
    assert host.ping().status_code == 204
