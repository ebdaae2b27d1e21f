"""End to end against the SMTP fake, the way a real server (Exim) behaves: a wrong password is
probed with one AUTH at growing intervals, a TLS mode that does not match the port leaves the
channel misconfigured, a connection lost after the final dot is retried as "outcome unknown",
and every message says it was sent by a machine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.fakes.smtp import DISCONNECT, FakeSmtp
from tests.fakes.tls import Certificate
from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

USER, PASSWORD = "notifier@example.org", "smtp-pass-71d2"
ADDRESSES = ["ops@example.org", "oncall@example.org", "boss@example.org"]
DELAY = 0.3


def config(smtp: FakeSmtp, certificate: Certificate, processes: int = 1, **params: Any) -> str:
    channel = {
        "worker": "email",
        "processes": processes,
        "retry": {"delay": DELAY, "max_attempts": 3, "jitter": 0},
        "params": {
            "host": smtp.host,
            "port": smtp.port,
            "security": smtp.security,
            "username": USER,
            "password": PASSWORD,
            "sender": USER,
            "to": ADDRESSES,
            "ca_file": str(certificate.cert),
            "timeout": 2,
            **params,
        },
    }
    return yaml.safe_dump({"channels": {"mail": channel}}, sort_keys=False)


@pytest.fixture
def smtp(certificate: Certificate) -> Iterator[FakeSmtp]:
    with FakeSmtp(certificate, username=USER, password=PASSWORD) as fake:
        yield fake


def held_uncharged(daemon: Daemon) -> list[dict[str, Any]]:
    found = daemon.deliveries(channel="mail")
    assert len(found) == len(ADDRESSES)
    assert {(d["state"], d["attempts"]) for d in found} == {("queued", 0)}
    return found


def test_a_wrong_password_is_probed_with_one_auth_at_growing_intervals(
    make_daemon: DaemonFactory, smtp: FakeSmtp, certificate: Certificate
) -> None:
    text = config(smtp, certificate, processes=2, password="wrong-pass-0000")
    daemon = make_daemon(text).start()

    assert daemon.send("mail", "disk full").status_code == 204

    # The first refusal may meet a second one sent alongside it (two worker processes); from
    # then on the channel probes: one delivery, one AUTH, after DELAY x 1, 3, 6.
    wait_for(lambda: len(smtp.failed_login_at) >= 5, timeout=30, what="five refused logins")
    times = smtp.failed_login_at
    first = [t for t in times if t - times[0] < DELAY / 2]
    probes = times[len(first) :]
    assert len(first) <= 2 and len(probes) >= 3
    gaps = [later - earlier for earlier, later in zip([first[-1], *probes], probes, strict=False)]
    for gap, factor in zip(gaps, (1, 3, 6), strict=False):
        assert gap >= DELAY * factor - 0.05, f"probe gaps {gaps}"
    assert gaps[2] > gaps[1] > gaps[0]
    # The fifth refusal has reached the fake, not necessarily the Store yet: the probe is
    # leased until its answer is stored.
    wait_for(
        lambda: all(d["state"] == "queued" for d in daemon.deliveries(channel="mail")),
        timeout=10,
        what="the last probe's answer stored",
    )
    held_uncharged(daemon)
    status = daemon.channel_status("mail")
    assert status["state"] == "misconfigured" and "535" in status["last_error"]


@pytest.mark.parametrize(("server", "channel"), [("starttls", "tls"), ("tls", "starttls")])
def test_a_tls_mode_that_does_not_match_the_port_leaves_the_channel_misconfigured(
    make_daemon: DaemonFactory, certificate: Certificate, server: str, channel: str
) -> None:
    with FakeSmtp(certificate, security=server) as fake:  # type: ignore[arg-type]
        text = config(fake, certificate, security=channel, username=None, password=None)
        daemon = make_daemon(text).start()

        assert daemon.send("mail", "disk full").status_code == 204

        def misconfigured() -> dict[str, Any] | None:
            status = daemon.channel_status("mail")
            return status if status["state"] == "misconfigured" else None

        status = wait_for(misconfigured, timeout=20, what="the channel misconfigured")
        assert f"security: {server}" in status["last_error"]
        held_uncharged(daemon)
        assert fake.messages == []


def test_a_connection_lost_after_the_final_dot_is_retried_as_outcome_unknown(
    make_daemon: DaemonFactory, smtp: FakeSmtp, certificate: Certificate
) -> None:
    smtp.script_data(ADDRESSES[0], DISCONNECT)
    daemon = make_daemon(config(smtp, certificate)).start()

    assert daemon.send("mail", "disk full").status_code == 204

    def settled() -> list[dict[str, Any]] | None:
        found = daemon.deliveries(channel="mail")
        done = len(found) == 3 and all(d["state"] == "delivered" for d in found)
        return found if done else None

    states = {d["recipient"]: d["attempts"] for d in wait_for(settled, what="all delivered")}
    assert states == {ADDRESSES[0]: 2, ADDRESSES[1]: 1, ADDRESSES[2]: 1}
    [line] = [
        e
        for e in daemon.events("delivery.attempt")
        if e["recipient"] == ADDRESSES[0] and e["outcome"] == "temporary"
    ]
    assert "outcome unknown" in line["error"] and "may have been delivered" in line["error"]
    assert len(smtp.messages) == 3
    for received in smtp.messages:
        assert received.message["Auto-Submitted"] == "auto-generated"
