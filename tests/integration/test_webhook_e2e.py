"""End to end through the daemon, what only the generic `webhook` worker does (the scenarios
every destination has are in test_destinations_e2e): TLS with a local CA, the start-up
warning about plain http, and success judged by a field of the answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.fakes.server import Raw
from tests.fakes.tls import Certificate
from tests.fakes.webhook import FakeWebhook
from tests.harness import wait_for
from tests.integration.conftest import DaemonFactory
from tests.integration.destinations import (
    FAST_RETRY,
    TEXT,
    channel_file,
    queued_misconfigured,
    settled,
)


def channels(**params: dict[str, Any]) -> str:
    specs = {
        name: {"worker": "webhook", "retry": FAST_RETRY, "params": p} for name, p in params.items()
    }
    return yaml.safe_dump({"channels": specs}, allow_unicode=True, sort_keys=False)


@pytest.fixture
def tls_fake(certificate: Certificate) -> Iterator[FakeWebhook]:
    """A fake endpoint on https with the test certificate. Asked for before `make_daemon`:
    the daemon stops first."""
    server = FakeWebhook(tls=certificate.server_context())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake() -> Iterator[FakeWebhook]:
    server = FakeWebhook()
    server.start()
    yield server
    server.stop()


def test_a_server_certificate_signed_by_a_local_ca_is_trusted_with_ca_file(
    tls_fake: FakeWebhook, certificate: Certificate, make_daemon: DaemonFactory
) -> None:
    url = f"{tls_fake.base_url}/notify"
    daemon = make_daemon(
        channels(
            trusted={"url": url, "ca_file": str(certificate.cert), "timeout": 2},
            untrusted={"url": url, "timeout": 2},
        )
    ).start()

    assert daemon.send("trusted", TEXT).status_code == 204
    assert daemon.send("untrusted", "held").status_code == 204

    [row] = settled(daemon, channel="trusted")
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert tls_fake.payloads == [{"channel": "trusted", "recipient": "", "message": TEXT}]
    held = queued_misconfigured(daemon, channel="untrusted")
    assert held["last_error"].startswith(
        "webhook: the TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: self-signed certificate: set params.ca_file of channel 'untrusted'"
    )


def test_plain_http_to_another_host_is_warned_about_at_start_up(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(
        channels(
            far={"url": "http://hooks.example.invalid/notify", "token": "${HOOK_TOKEN}"},
            near={"url": "http://127.0.0.1:9/notify"},
        ),
        env={"HOOK_TOKEN": "t0ken-0123456789"},
    ).start()

    warning = wait_for(lambda: daemon.event("webhook.plain_http"), what="the warning")
    assert warning["channel"] == "far"
    assert "sends its messages and credentials over plain http" in warning["hint"]
    assert len(daemon.events("webhook.plain_http")) == 1


def test_a_success_status_whose_answer_says_not_ok_fails_with_the_answer(
    fake: FakeWebhook, make_daemon: DaemonFactory
) -> None:
    answer = json.dumps({"ok": False, "error": "channel_is_archived"})
    fake.ok = Raw(200, json.dumps({"ok": True}), "application/json")
    fake.script(Raw(200, answer, "application/json"))
    params = {"url": f"{fake.base_url}/notify", "success_field": "ok", "timeout": 2}
    daemon = make_daemon(channel_file("webhook", params)).start()

    assert daemon.send("out", "refused").status_code == 204
    [refused] = settled(daemon)
    assert daemon.send("out", "accepted").status_code == 204
    _, accepted = settled(daemon, 2)

    assert (refused["state"], refused["attempts"]) == ("failed", 1)
    assert refused["last_error"] == f"webhook: HTTP 200 but ok is not true: {answer}"
    assert (accepted["state"], accepted["attempts"]) == ("delivered", 1)
    # Each reached the endpoint once: the refusal was not retried.
    assert [payload["message"] for payload in fake.payloads] == ["refused", "accepted"]
