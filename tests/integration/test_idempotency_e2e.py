"""End to end: a client that sends again with the same Idempotency-Key (a retry after a
timeout, or several at once) gets the first job's id and the message is delivered once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

CHANNELS = 'channels:\n  one:\n    worker: "null"\n  two:\n    worker: "null"\n'


def send(daemon: Daemon, channel: str, key: str, message: str = "disk full") -> requests.Response:
    return requests.post(
        daemon.url(f"/api/send/{channel}"),
        data={"message": message},
        headers={"Idempotency-Key": key},
        timeout=10,
    )


def delivered(daemon: Daemon, channel: str) -> list[dict[str, object]]:
    return [d for d in daemon.deliveries(channel=channel) if d["state"] == "delivered"]


def test_the_same_key_twice_makes_one_job_delivered_once(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(CHANNELS).start()

    first = send(daemon, "one", "order-17")
    wait_for(lambda: delivered(daemon, "one"), what="the delivery")
    again = send(daemon, "one", "order-17")

    assert (first.status_code, again.status_code) == (204, 204), again.text
    assert first.headers["X-Job-Id"] == again.headers["X-Job-Id"]
    assert len(daemon.deliveries(channel="one")) == 1
    assert len(delivered(daemon, "one")) == 1


def test_twenty_concurrent_requests_with_one_key_make_one_job(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(CHANNELS).start()

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: send(daemon, "one", "retry-storm"), range(20)))

    assert {r.status_code for r in responses} == {204}
    assert len({r.headers["X-Job-Id"] for r in responses}) == 1
    wait_for(lambda: delivered(daemon, "one"), what="the delivery")
    assert len(daemon.deliveries(channel="one")) == 1


def test_a_key_reused_for_another_message_or_delay_is_a_409(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(CHANNELS).start()
    first = send(daemon, "one", "k")

    other_message = send(daemon, "one", "k", message="disk fine")
    other_delay = requests.post(
        daemon.url("/api/send/one"),
        json={"message": "disk full", "delay": 5, "idempotency_key": "k"},
        timeout=10,
    )

    for refused in (other_message, other_delay):
        assert refused.status_code == 409
        body = refused.json()
        assert body["code"] == "idempotency_key_reused"
        assert body["field"] == "idempotency_key"
        assert f"job {first.headers['X-Job-Id']}" in body["description"]
    assert len(daemon.deliveries(channel="one")) == 1


def test_a_key_is_per_channel_and_may_come_as_a_field(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(CHANNELS).start()

    on_one = send(daemon, "one", "shared")
    on_two = send(daemon, "two", "shared")
    as_query = requests.post(
        daemon.url("/api/send/two?idempotency_key=shared"),
        data={"message": "disk full"},
        timeout=10,
    )

    assert on_one.headers["X-Job-Id"] != on_two.headers["X-Job-Id"]
    assert as_query.headers["X-Job-Id"] == on_two.headers["X-Job-Id"]


def test_a_key_outlives_a_restart(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(CHANNELS).start()
    first = send(daemon, "one", "durable")
    assert daemon.terminate() == 0

    daemon.start()
    again = send(daemon, "one", "durable")

    assert again.status_code == 204
    assert again.headers["X-Job-Id"] == first.headers["X-Job-Id"]
    assert len(daemon.deliveries(channel="one")) == 1


def test_a_bad_key_is_a_422_naming_the_field(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(CHANNELS).start()

    too_long = send(daemon, "one", "k" * 256)
    not_ascii = requests.post(
        daemon.url("/api/send/one"),
        json={"message": "m", "idempotency_key": "ключ"},
        timeout=10,
    )
    disagreeing = requests.post(
        daemon.url("/api/send/one?idempotency_key=a"),
        data={"message": "m"},
        headers={"Idempotency-Key": "b"},
        timeout=10,
    )

    assert [r.status_code for r in (too_long, not_ascii, disagreeing)] == [422, 422, 422]
    assert {r.json()["field"] for r in (too_long, not_ascii, disagreeing)} == {"idempotency_key"}
    assert daemon.deliveries(channel="one") == []
