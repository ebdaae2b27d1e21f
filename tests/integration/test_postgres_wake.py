"""The wake-up across hosts (DESIGN §9): a job accepted by one host is claimed by another at
once, through PostgreSQL's NOTIFY and `Store.on_wake`, not at that host's next poll."""

from __future__ import annotations

import functools
import time

import requests

from notifierd.channels.dispatcher import IDLE_POLL_SECONDS
from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

#: Host A's only worker holds one delivery for longer than the test lasts: A has no room, so
#: what A accepts can only be sent by B.
BUSY_CHANNEL = """
channels:
  devnull:
    worker: "null"
    processes: 1
    prefetch: 1
    params: {send_seconds: 120}
"""

FREE_CHANNEL = """
channels:
  devnull:
    worker: "null"
"""

#: Well under the dispatcher's poll: a delivery this soon after its 204 was woken, not polled.
WOKEN_WITHIN = 1.0


def delivery_state(daemon: Daemon, job_id: int) -> str:
    response = requests.get(daemon.url(f"/api/jobs/{job_id}"), timeout=10)
    assert response.status_code == 200, response.text
    [delivery] = response.json()["deliveries"]
    return str(delivery["state"])


def delivered(daemon: Daemon, job_id: int) -> bool:
    return delivery_state(daemon, job_id) == "delivered"


def sent(daemon: Daemon, text: str) -> int:
    response = daemon.send("devnull", text)
    assert response.status_code == 204, response.text
    return int(response.headers["X-Job-Id"])


def test_a_job_accepted_by_one_host_is_sent_by_another_at_once(
    postgres_url: str, make_daemon: DaemonFactory
) -> None:
    assert WOKEN_WITHIN * 4 < IDLE_POLL_SECONDS
    store = ["--store-url", postgres_url]
    a = make_daemon(BUSY_CHANNEL, name="a", extra_args=store).start()
    blocker = sent(a, "held by a")
    wait_for(lambda: delivery_state(a, blocker) == "leased", what="a's worker busy")
    b = make_daemon(FREE_CHANNEL, name="b", extra_args=store).start()
    warm_up = sent(b, "b's worker ready")
    wait_for(lambda: delivery_state(b, warm_up) == "delivered", what="b delivers its own")

    # Three in a row: B's poll could fall within the window once by chance, not three times.
    for index in range(3):
        job_id = sent(a, f"accepted by a, {index}")
        accepted = time.monotonic()
        wait_for(
            functools.partial(delivered, b, job_id),
            timeout=IDLE_POLL_SECONDS * 2,
            what=f"job {job_id} delivered",
        )
        took = time.monotonic() - accepted
        assert took < WOKEN_WITHIN, f"job {job_id} delivered {took:.2f} s after its 204"
    delivered_by_b = {event["delivery_id"] for event in b.events("null.delivered")}
    assert len(delivered_by_b) == 4
    assert a.events("null.delivered") == []
