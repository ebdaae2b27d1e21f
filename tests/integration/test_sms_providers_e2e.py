"""End to end through the daemon: Twilio with an API key and the channel's time-to-live passed
as `ValidityPeriod`, and a channel file that gives Twilio two ways to authenticate (or none)
refused by check-config with the key path."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.fakes.twilio import DEFAULT_API_KEY, DEFAULT_TOKEN, FakeTwilio
from tests.integration.conftest import DaemonFactory
from tests.integration.test_sms_email_e2e import (
    channel_file,
    check_config,
    settled,
    twilio_remote,
)

ALERT = "🔥 disk full ✅ → ≥ 90%"


def test_twilio_api_key_and_the_ttl_as_validity_period(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    params = twilio_remote(twilio).params
    del params["auth_token"]
    params |= {"api_key_sid": DEFAULT_API_KEY[0], "api_key_secret": "${SECRET}"}
    config = channel_file("out", "sms", params, ttl=600)
    daemon = make_daemon(config, env={"SECRET": DEFAULT_API_KEY[1]}).start()

    assert daemon.send("out", ALERT).status_code == 204

    states = settled(daemon, len(params["phones"]))
    assert {d["state"] for d in states.values()} == {"delivered"}
    key = base64.b64encode(":".join(DEFAULT_API_KEY).encode()).decode()
    for request in twilio.requests:
        assert request.headers["Authorization"] == f"Basic {key}"
        # What is left of the 600 s when the request goes: a little less, never more.
        assert 590 <= int(request.params["ValidityPeriod"]) <= 600
    assert {m.body for m in twilio.messages} == {ALERT}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"api_key_sid": "SK1", "api_key_secret": "s"}, "or `auth_token`, not both"),
        ({"auth_token": None}, "twilio needs an API key"),
    ],
)
def test_check_config_wants_one_way_to_authenticate(
    tmp_path: Path, change: dict[str, str | None], fragment: str
) -> None:
    params = {
        "provider": "twilio",
        "account_sid": "AC1",
        "auth_token": DEFAULT_TOKEN,
        "sender": "+15005550006",
        "phones": ["+79251234567"],
        **change,
    }
    config = tmp_path / "channels.yaml"
    clean = {name: value for name, value in params.items() if value is not None}
    config.write_text(channel_file("texts", "sms", clean), encoding="utf-8")

    result = check_config(config)

    assert result.returncode == 2, result.stdout
    assert f"{config}: channels.texts.params: " in result.stderr
    assert fragment in result.stderr
    assert DEFAULT_TOKEN not in result.stderr
