"""Three hosts under load through all three; one dies (SIGKILL to its process group: parent and
workers) at a random moment, ten times, a random victim each time (issue 16, "Must be shown by
tests"). Every job answered 204 ends DELIVERED; the dead host's leases are requeued within
`dead_after` + 2 s; the only deliveries the remote sees twice are ones the dead host held."""

from __future__ import annotations

import random
import time

import pytest

from tests.cluster.cluster import DEAD_AFTER, Cluster, Database, Load, all_delivered
from tests.cluster.conftest import ClusterFactory
from tests.cluster.endpoint import Endpoint
from tests.harness import Daemon, wait_for

ROUNDS = 10
#: Requeued at most this long after the death: `dead_after`, then the reaper's period (about a
#: second) and the heartbeat the victim may have sent just before it died.
REQUEUE_BOUND = DEAD_AFTER + 2.0


@pytest.mark.timeout(60 + ROUNDS * (REQUEUE_BOUND + 15))
def test_a_host_killed_mid_load_ten_times_loses_nothing(
    postgres_url: str, make_cluster: ClusterFactory, endpoint: Endpoint
) -> None:
    chance = random.Random()
    seed = chance.randrange(2**32)
    chance.seed(seed)
    cluster = make_cluster(postgres_url, lambda host: endpoint.channels(host, prefetch=2))
    hosts = cluster.start(3)
    database = Database(postgres_url)
    load = Load(hosts, "hook", per_second=20).start()
    held: set[int] = set()
    report = []
    try:
        for round_ in range(ROUNDS):
            victim = chance.choice(hosts)
            moment = chance.uniform(0.3, 2.0)
            requeued, in_hand = _kill_and_recover(cluster, database, endpoint, victim, moment)
            held |= in_hand
            report.append((Cluster.name(victim), round(moment, 2), len(in_hand), requeued))
            assert requeued <= REQUEUE_BOUND, (
                f"round {round_} (seed {seed}): {Cluster.name(victim)}'s leases requeued"
                f" {requeued:.2f} s after its death (dead_after {DEAD_AFTER:g} s)"
            )
            victim.start()
    finally:
        load.stop()
    accepted = load.accepted
    assert len(accepted) > ROUNDS * 50, f"too little load to show anything: {len(accepted)}"
    wait_for(all_delivered(database, accepted), timeout=60, what="every 204'd job delivered")

    # The remote saw every delivery of every accepted job; twice only what a dead host held.
    deliveries = database.delivery_ids(accepted)
    seen = {send.delivery for send in endpoint.sends()}
    assert set(deliveries) <= seen
    duplicates = endpoint.duplicates()
    assert duplicates <= held, (
        f"seed {seed}: sent twice but not held by a dead host: {sorted(duplicates - held)};"
        f" rounds (victim, moment, held, requeued after): {report}"
    )
    print(
        f"\nseed {seed}; {len(accepted)} accepted, {len(deliveries)} delivered;"
        f" {len(duplicates)} sent twice of {len(held)} held by the dead;"
        f" rounds (victim, moment s, leases held, requeued after s): {report}"
    )


def _kill_and_recover(
    cluster: Cluster, database: Database, endpoint: Endpoint, victim: Daemon, moment: float
) -> tuple[float, set[int]]:
    """Kill `victim` `moment` seconds after it next sends something; returns how long its
    leases took to be requeued, and which deliveries it held when it died."""
    sent = endpoint.count()
    name = Cluster.name(victim)
    wait_for(
        lambda: any(s.host == name for s in endpoint.sends()[sent:]),
        timeout=30,
        what=f"{name} delivering",
    )
    time.sleep(moment)  # the random moment of the death, not a wait for something
    pid = Cluster.pid(victim)
    cluster.kill(victim)
    killed_at = time.monotonic()
    # Nothing changes a dead host's leases before the reaper: read them now.
    in_hand = database.leased_by(pid)
    wait_for(
        lambda: not database.leased_by(pid),
        timeout=REQUEUE_BOUND + 30,
        interval=0.1,
        what=f"the leases of {name} (pid {pid}) requeued",
    )
    return time.monotonic() - killed_at, in_hand
