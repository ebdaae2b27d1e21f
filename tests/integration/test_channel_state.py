"""A channel's condition kept in the Store: a restart does not forget that the remote refused
the channel's credentials, nor how long the channel must wait before it probes again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.harness import wait_for, write_config
from tests.integration.conftest import DaemonFactory

DELAY = 8.0
PROBED = """
channels:
  probe:
    worker: "null"
    retry: {{delay: {delay}, jitter: 0}}
    params: {{faults: {faults}}}
"""


def stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def test_a_refused_channel_stays_refused_across_a_restart_until_its_probe(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(PROBED.format(delay=DELAY, faults="[{kind: misconfigured}]")).start()
    assert daemon.send("probe", "hello").status_code == 204
    refused = wait_for(lambda: daemon.event("channel.misconfigured"), what="the refusal")
    assert daemon.terminate() == 0

    # Fixed while it was down; the remote still has to be asked, at the time it was due.
    write_config(daemon.config, PROBED.format(delay=DELAY, faults="[]"))
    daemon.start()

    def still_refused() -> dict[str, Any] | None:
        status = daemon.channel_status("probe")
        return status if status["state"] == "misconfigured" else None

    status = wait_for(still_refused, what="the channel misconfigured after the restart")
    assert "injected misconfiguration" in status["last_error"]
    delivered = wait_for(
        lambda: daemon.event("delivery.attempt", since_start=True),
        timeout=DELAY + 20,
        what="the probe delivered",
    )
    assert delivered["state"] == "delivered"
    # The cool-down began as the refusal was stored, a moment before it was logged.
    assert stamp(delivered) >= stamp(refused) + DELAY - 1.0
    wait_for(lambda: daemon.channel_status("probe")["state"] == "running", what="running")
