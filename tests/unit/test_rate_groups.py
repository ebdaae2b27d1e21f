"""Rate keys: channels that spend one remote budget (a Telegram bot, an SMS account) share
one pacing and one cool-down (`RateGroup`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notifierd.channels.rate_groups import RateGroup, rate_groups
from notifierd.config import Channel, load_channels
from notifierd.messages import Delivery

T0 = 5000.0
BOT = "123456789:AAF4k3-T0k3n_for_tests_only_aBcDeFgHiJk"
OTHER_BOT = "987654321:AAOth3r-T0k3n_for_tests_only_zYxWvUt"
TWILIO: dict[str, Any] = {
    "provider": "twilio",
    "account_sid": "AC0123456789abcdef",
    "auth_token": "s3cr3t-auth-token",
    "sender": "+15005550006",
}


def telegram(token: str = BOT, **params: Any) -> dict[str, Any]:
    return {"worker": "telegram", "params": {"token": token, "chat_id": 42, **params}}


def sms(**params: Any) -> dict[str, Any]:
    return {"worker": "sms", "params": {**TWILIO, "phones": ["+79251234567"], **params}}


def channels(tmp_path: Path, **entries: dict[str, Any]) -> dict[str, Channel]:
    path = tmp_path / "channels.yaml"
    path.write_text(json.dumps({"channels": entries}))  # JSON is YAML
    return load_channels(path, 3600)


class FakeMember:
    def __init__(self) -> None:
        self.cooled_until = 0.0
        self.woken = 0

    def cool_down(self, until: float) -> None:
        self.cooled_until = max(self.cooled_until, until)

    def wake(self) -> None:
        self.woken += 1


def delivery(recipient: str) -> Delivery:
    return Delivery(1, 2, "c", recipient, "hello", 1)


def test_two_channels_on_one_bot_share_a_group(tmp_path: Path) -> None:
    groups = rate_groups(
        channels(
            tmp_path,
            a=telegram(),
            b=telegram(chat_id=[-1001234567890]),
            c=telegram(OTHER_BOT),
            devnull={"worker": "null"},
        ).values()
    )
    assert groups["a"] is groups["b"]
    assert groups["c"] is not groups["a"]
    assert groups["devnull"].key is None
    assert groups["devnull"] not in (groups["a"], groups["c"])


def test_the_key_never_holds_the_token(tmp_path: Path) -> None:
    groups = rate_groups(channels(tmp_path, a=telegram()).values())
    key = groups["a"].key
    assert key is not None and key.startswith("telegram:")
    for secret in (BOT, BOT.split(":", 1)[1]):
        assert secret not in key


def test_one_sms_account_is_one_key(tmp_path: Path) -> None:
    groups = rate_groups(
        channels(
            tmp_path,
            ops=sms(),
            sales=sms(phones=["+447700900123"], sender="+15005550007"),
            other=sms(account_sid="AC99999999"),
            smsru={
                "worker": "sms",
                "params": {"provider": "smsru", "api_id": "K3Y", "phones": ["+79251234567"]},
            },
            gateway={
                "worker": "sms",
                "params": {
                    "provider": "http",
                    "url": "http://127.0.0.1:9/send?to={phone}&text={message}",
                    "phones": ["+79251234567"],
                },
            },
        ).values()
    )
    assert groups["ops"] is groups["sales"]
    assert groups["other"] is not groups["ops"]
    assert groups["smsru"].key is not None and "K3Y" not in groups["smsru"].key
    assert groups["gateway"].key is None  # an unknown gateway: its own budget


def test_the_group_paces_at_the_smallest_rate_and_the_longest_interval(tmp_path: Path) -> None:
    found = channels(
        tmp_path,
        fast=telegram(rate_per_second=30, chat_interval=1, group_chat_interval=3),
        slow=telegram(rate_per_second=10, chat_interval=2, group_chat_interval=0),
        unlimited=telegram(rate_per_second=None),
    )
    group = rate_groups(found.values())["fast"]
    assert group.window is not None
    assert (group.window.limit, group.window.window) == (10, 1.0)
    assert group.interval("42") == 2.0  # a private chat: the slow channel's
    assert group.interval("-1001234567890") == 3.0  # a group: the fast channel's


@pytest.mark.parametrize("rate", [None, 5.0])
def test_a_channel_alone_paces_as_it_says(tmp_path: Path, rate: float | None) -> None:
    group = rate_groups(channels(tmp_path, a=telegram(rate_per_second=rate)).values())["a"]
    limit = None if group.window is None else group.window.limit
    assert limit == rate


def test_a_cool_down_reaches_every_member(tmp_path: Path) -> None:
    group = RateGroup("k", list(channels(tmp_path, a=telegram(), b=telegram()).values()))
    first, second = FakeMember(), FakeMember()
    group.join(first)
    group.join(second)
    group.cool_down(T0 + 30)
    assert first.cooled_until == second.cooled_until == T0 + 30


def test_an_answer_frees_the_recipient_and_the_slot_for_every_member(tmp_path: Path) -> None:
    group = RateGroup("k", list(channels(tmp_path, a=telegram(), b=telegram()).values()))
    assert group.window is not None
    first, second = FakeMember(), FakeMember()
    group.join(first)
    group.join(second)
    group.started([delivery("42")], T0)
    assert group.pacer.busy(T0 + 5) == {"42"}  # busy for both channels while being sent
    assert group.window.available(T0) == 29
    group.finished([delivery("42")], T0 + 0.2, by=first)
    assert (first.woken, second.woken) == (0, 1)  # `first` is woken once its outcome is stored
    assert group.pacer.busy(T0 + 1.1) == {"42"}
    assert group.pacer.busy(T0 + 1.2) == set()
    assert group.window.available(T0 + 1.1) == 29
    assert group.window.available(T0 + 1.2) == 30
