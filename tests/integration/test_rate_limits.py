"""A remote's "slow down" through the real daemon: a 429 costs no attempt and only the TTL
ends a remote that keeps saying it; channels on one Telegram bot or one SMS account share one
budget, so that under load the fake never has reason to answer 429."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, Recorded, Reply
from tests.fakes.twilio import ACCEPT, DEFAULT_SID, DEFAULT_TOKEN, FakeTwilio, rate_limited
from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory

TERMINAL = {"delivered", "failed", "dead", "expired"}
#: Telegram's published limits, as the channels' defaults state them.
BOT_PER_SECOND = 30
CHAT_INTERVAL = 1.0


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(token=TOKEN) as api:
        yield api


def telegram(
    api_url: str,
    chat_id: int | list[int],
    *,
    processes: int = 1,
    ttl: int = 3600,
    retry: dict[str, Any] | None = None,
    **params: Any,
) -> dict[str, Any]:
    return {
        "worker": "telegram",
        "processes": processes,
        "ttl": ttl,
        "retry": retry or {"delay": 0.2, "max_attempts": 3, "jitter": 0},
        "params": {
            "token": "${TELEGRAM_BOT_TOKEN}",
            "chat_id": chat_id,
            "api_url": api_url,
            "timeout": 5,
            **params,
        },
    }


def start(make_daemon: DaemonFactory, **channels: dict[str, Any]) -> Daemon:
    config = yaml.safe_dump({"channels": channels}, sort_keys=False)
    return make_daemon(config, env={"TELEGRAM_BOT_TOKEN": TOKEN}).start()


def settled(daemon: Daemon, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        rows = daemon.deliveries()
        done = len(rows) == count and all(row["state"] in TERMINAL for row in rows)
        return rows if done else None

    return wait_for(check, timeout=timeout, what=f"{count} settled deliveries")


# -- a 429 is not a failed attempt -------------------------------------------------------------


def test_three_429s_then_success_is_delivered_with_one_attempt(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    fake.script(501, Reply.too_many_requests(retry_after=1), times=3)
    daemon = start(make_daemon, tg=telegram(fake.url, 501))

    assert daemon.send("tg", "disk full on db-1").status_code == 204
    [row] = settled(daemon, 1)

    assert (row["state"], row["attempts"]) == ("delivered", 1)  # max_attempts is 3
    received = fake.received(501)
    assert [r.status for r in received] == [429, 429, 429, 200]
    for earlier, later in itertools.pairwise(received):
        assert later.at - earlier.at >= 1.0, "a retry came before the remote's retry_after"
    limited = [e for e in daemon.events("delivery.attempt") if e["outcome"] == "rate_limited"]
    assert [(e["level"], e["state"], e["retry_after"]) for e in limited] == [
        ("warning", "queued", 1)
    ] * 3


def test_a_remote_that_always_answers_429_ends_expired_by_the_ttl(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    fake.always(502, Reply.too_many_requests(retry_after=1))
    retry = {"delay": 0.2, "max_attempts": 2, "jitter": 0}
    daemon = start(make_daemon, tg=telegram(fake.url, 502, ttl=5, retry=retry))

    assert daemon.send("tg", "never let through").status_code == 204
    [row] = settled(daemon, 1, timeout=15)

    # Charged, the second 429 would have ended it DEAD.
    assert (row["state"], row["attempts"]) == ("expired", 0)
    assert "Too Many Requests" in row["last_error"]
    tries = fake.received(502)
    assert len(tries) > retry["max_attempts"]
    assert tries[-1].at - tries[0].at < 5, "tried after the TTL"


# -- one bot, one budget -----------------------------------------------------------------------


def test_two_channels_on_one_bot_keep_to_its_limits_together(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    # 40 private chats each; 20 of them are on both channels. 3 jobs on one channel and 2 on
    # the other: 200 messages, 5 to each shared chat.
    alerts_chats = list(range(1001, 1041))
    reports_chats = list(range(1021, 1061))
    daemon = start(
        make_daemon,
        alerts=telegram(fake.url, alerts_chats, processes=2),
        reports=telegram(fake.url, reports_chats, processes=2),
    )
    for index in range(3):
        assert daemon.send("alerts", f"alert {index}").status_code == 204
        if index < 2:
            assert daemon.send("reports", f"report {index}").status_code == 204

    rows = settled(daemon, 200, timeout=60)

    assert {row["state"] for row in rows} == {"delivered"}
    records = sorted(fake.records, key=lambda record: record.at)
    assert len(records) == 200
    assert [r for r in records if r.status != 200] == []
    assert busiest_second(records) <= BOT_PER_SECOND
    by_chat: dict[str | None, list[Recorded]] = defaultdict(list)
    for record in records:
        by_chat[record.chat].append(record)
    assert len(by_chat["1030"]) == 5
    closest = min(
        later.at - earlier.at
        for chat in by_chat.values()
        for earlier, later in itertools.pairwise(chat)
    )
    assert closest >= CHAT_INTERVAL, f"two messages to one chat {closest:.3f} s apart"


def busiest_second(records: list[Recorded]) -> int:
    """The most requests that arrived within any one second (records sorted by arrival)."""
    most, first = 0, 0
    for last, record in enumerate(records):
        while record.at - records[first].at >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_a_429_on_one_sms_channel_holds_back_the_other_on_the_same_account(
    make_daemon: DaemonFactory, twilio: FakeTwilio
) -> None:
    retry_after = 2
    twilio.script("+79251234567", rate_limited(retry_after=retry_after), ACCEPT)

    def sms(phone: str) -> dict[str, Any]:
        params = {
            "provider": "twilio",
            "account_sid": DEFAULT_SID,
            "auth_token": "${SECRET}",
            "sender": "+15005550006",
            "phones": [phone],
            "base_url": twilio.base_url,
        }
        return {"worker": "sms", "retry": {"delay": 0.2, "jitter": 0}, "params": params}

    config = {"channels": {"ops": sms("+79251234567"), "sales": sms("+447700900123")}}
    daemon = make_daemon(json.dumps(config), env={"SECRET": DEFAULT_TOKEN}).start()

    assert daemon.send("ops", "first").status_code == 204
    wait_for(lambda: twilio.requests, what="the rate-limited request")
    assert daemon.send("sales", "on the same account").status_code == 204
    rows = settled(daemon, 2)

    assert {(row["channel"], row["state"], row["attempts"]) for row in rows} == {
        ("ops", "delivered", 1),
        ("sales", "delivered", 1),
    }
    [refused, *later] = twilio.requests
    assert refused.params["To"] == "+79251234567"
    pauses = [round(request.at - refused.at, 3) for request in later]
    assert min(pauses) >= retry_after - 0.05, f"sent {pauses} s after a 429 of {retry_after} s"
