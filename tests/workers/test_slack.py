"""The `slack` worker's params and its mrkdwn escaping."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from notifierd.workers.slack import SlackParams, SlackWorker, escape


def test_mrkdwn_escapes_only_the_three_reserved_characters() -> None:
    assert escape("a & b <!here> *bold* _i_ 🔥") == "a &amp; b &lt;!here&gt; *bold* _i_ 🔥"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "slack needs webhook_url"),
        ({"token": "xoxb-1"}, "slack needs webhook_url"),
        ({"webhook_url": "https://hooks.slack.com/x", "token": "xoxb-1"}, "not both"),
        ({"token": "xoxb-1", "channel_id": "#general"}, "String should match pattern"),
        ({"webhook_url": "hooks.slack.com/services/x"}, "must be an http:// or https:// URL"),
    ],
)
def test_one_way_to_post_is_required(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        SlackParams(**params)


def test_a_bot_paces_each_channel_and_a_webhook_itself() -> None:
    bot = SlackParams(token="xoxb-1", channel_id="C0123ABCD")
    other_channel = SlackParams(token="xoxb-1", channel_id="C0123ABCE")
    hook = SlackParams(webhook_url="https://hooks.slack.com/services/T/B/xyz")

    keys = {SlackWorker.rate_key(p) for p in (bot, other_channel, hook)}

    assert len(keys) == 3
    assert SlackWorker.secrets(bot) == ["xoxb-1"]
    assert "xoxb-1" not in str(keys)
