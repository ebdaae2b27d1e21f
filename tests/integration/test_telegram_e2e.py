"""End-to-end tests of the Telegram worker: a real `bin/notifierd` (debug level, JSON log), its
HTTP API and control socket, and the fake Bot API server, which records what reached it and when.

Each test starts its own fake and daemon. Retries are fast (`FAST_RETRY`) and chats are not
paced unless the test is about pacing, so that the file runs in well under a minute.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.fakes.server import free_port
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, Recorded, Reply
from tests.harness import BIN, Daemon, wait_for
from tests.integration.conftest import DaemonFactory

FAST_RETRY: dict[str, Any] = {"delay": 0.2, "backoff": 1, "max_attempts": 3, "jitter": 0}
TERMINAL = {"delivered", "failed", "dead", "expired"}
#: The part of the token after the bot id: the secret that must never show.
SECRET = TOKEN.split(":", 1)[1]
CYRILLIC = (
    "Привет, мир!\n"
    "Сервер «db-1» недоступен — 3 попытки.\r\n"
    "\tЁлка № 5; ‘кавычки’ … <b>Внимание</b>\n"
    "Last line, Latin: 100% done."
)


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    """The fake without flood limits: `channel` does not pace chats unless a test says so."""
    with FakeTelegramApi(token=TOKEN, limits=None) as api:
        yield api


def channel(
    name: str,
    api_url: str,
    chat_id: int | list[int],
    *,
    processes: int = 1,
    prefetch: int = 1,
    retry: dict[str, Any] | None = None,
    **params: Any,
) -> str:
    """One channel's YAML. `params` and `retry` are written as JSON, which is YAML too."""
    all_params = {
        "token": "${TELEGRAM_BOT_TOKEN}",
        "chat_id": chat_id,
        "api_url": api_url,
        "timeout": 2,
        "chat_interval": 0,
        "group_chat_interval": 0,
        **params,
    }
    return (
        f"  {name}:\n"
        "    worker: telegram\n"
        f"    processes: {processes}\n"
        f"    prefetch: {prefetch}\n"
        f"    retry: {json.dumps(retry or FAST_RETRY)}\n"
        f"    params: {json.dumps(all_params, ensure_ascii=False)}\n"
    )


def start(make_daemon: DaemonFactory, *channels: str, token: str = TOKEN) -> Daemon:
    daemon = make_daemon("channels:\n" + "".join(channels), env={"TELEGRAM_BOT_TOKEN": token})
    return daemon.start()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


def settled(daemon: Daemon, channel_name: str, count: int) -> dict[str, dict[str, Any]]:
    """Wait until the channel has `count` deliveries, all in a terminal state; return them by
    recipient (when the channel has one job)."""

    def check() -> dict[str, dict[str, Any]] | None:
        rows = daemon.deliveries(channel=channel_name)
        if len(rows) == count and all(row["state"] in TERMINAL for row in rows):
            return {row["recipient"]: row for row in rows}
        return None

    return wait_for(check, timeout=20, what=f"{count} settled deliveries on {channel_name}")


def attempts_logged(daemon: Daemon, delivery_id: int, count: int) -> list[dict[str, Any]]:
    """The `count` attempt lines of a delivery in the daemon's log (written just after the
    Store is updated, so they may lag a moment behind what `deliveries()` shows)."""

    def check() -> list[dict[str, Any]] | None:
        events = daemon.events("delivery.attempt")
        found = [e for e in events if e.get("delivery_id") == delivery_id]
        return found if len(found) >= count else None

    found = wait_for(check, timeout=5, what=f"{count} attempts of delivery {delivery_id} logged")
    assert len(found) == count, found
    return found


def gaps(records: list[Recorded]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(records)]


# -- text and options ------------------------------------------------------------------------


def test_cyrillic_multiline_text_arrives_byte_identical_with_options(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    daemon = start(
        make_daemon,
        channel(
            "tg",
            fake.url,
            701,
            format="html",
            disable_notification=True,
            message_thread_id=42,
        ),
    )
    url = daemon.url("/api/send/tg")
    headers = {"Charset": "UTF-8"}

    responses = [
        daemon.send("tg", CYRILLIC),  # form-urlencoded body
        requests.post(url, json={"message": CYRILLIC}, headers=headers, timeout=10),
        requests.post(url, params={"message": CYRILLIC}, headers=headers, timeout=10),
    ]

    for response in responses:
        assert response.status_code == 204, response.text
        assert response.content == b""
    records = fake.wait_for(lambda records: len(records) >= 3)
    assert len(records) == 3
    for record in records:
        assert record.content_type == "application/json"
        sent_text = json.loads(record.body)["text"]
        assert sent_text.encode("utf-8") == CYRILLIC.encode("utf-8")
        assert record.params["chat_id"] == 701
        assert record.params["parse_mode"] == "HTML"
        assert record.params["disable_notification"] is True
        assert record.params["message_thread_id"] == 42
        assert record.accepted
    settled(daemon, "tg", 3)
    rows = daemon.deliveries(channel="tg")
    assert [(row["state"], row["attempts"]) for row in rows] == [("delivered", 1)] * 3


# -- how answers are classified ----------------------------------------------------------------


def test_refusals_fail_after_one_attempt_with_telegrams_description(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    refusals = {
        101: Reply.chat_not_found(),
        102: Reply.blocked(),
        103: Reply.kicked(),
        104: Reply.cant_parse_entities(),
    }
    for chat, reply in refusals.items():
        fake.always(chat, reply)
    daemon = start(make_daemon, channel("tg", fake.url, list(refusals)))

    assert daemon.send("tg", "refused everywhere").status_code == 204

    rows = settled(daemon, "tg", len(refusals))
    for chat, reply in refusals.items():
        row = rows[str(chat)]
        assert (row["state"], row["attempts"]) == ("failed", 1), row
        assert reply.description in row["last_error"]
        assert [r.status for r in fake.received(chat)] == [reply.status]
        [logged] = attempts_logged(daemon, row["id"], 1)
        assert (logged["level"], logged["state"]) == ("error", "failed")
        assert reply.description in logged["error"]
    assert daemon.channel_status("tg")["failed"] == len(refusals)


def test_temporary_trouble_is_retried_then_delivered(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    # Each chat meets one kind of trouble once, then the fake answers ok.
    trouble = {
        201: (Reply.server_error(), "Telegram server error (500"),
        202: (Reply.bad_gateway_html(), "HTTP 502 with a body that is not Bot API JSON"),
        203: (Reply.non_json(), "HTTP 200 with a body that is not Bot API JSON"),
        204: (Reply.slow(5), "did not answer within 0.5 s"),
        205: (Reply.reset(), "connection to Telegram failed"),
        206: (Reply.reset_mid_body(), "connection to Telegram failed"),
    }
    for chat, (reply, _) in trouble.items():
        fake.script(chat, reply)
    daemon = start(make_daemon, channel("tg", fake.url, list(trouble), processes=2, timeout=0.5))

    assert daemon.send("tg", "try again later").status_code == 204

    rows = settled(daemon, "tg", len(trouble))
    for chat, (reply, error) in trouble.items():
        row = rows[str(chat)]
        assert (row["state"], row["attempts"]) == ("delivered", 2), row
        received = fake.received(chat)
        assert [r.reply for r in received] == [reply.kind, "ok"]
        assert received[1].text == "try again later"
        assert received[1].at - received[0].at >= FAST_RETRY["delay"]
        first, second = attempts_logged(daemon, row["id"], 2)
        assert (first["outcome"], first["state"]) == ("temporary", "queued")
        assert error in first["error"]
        assert second["outcome"] == "delivered"


def test_lasting_trouble_ends_dead_after_max_attempts(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    fake.always(301, Reply.server_error())
    daemon = start(
        make_daemon,
        channel("flaky", fake.url, 301),
        channel("down", closed_port_url(), 302),
    )

    assert daemon.send("flaky", "never answered well").status_code == 204
    assert daemon.send("down", "nobody listens").status_code == 204

    [flaky] = settled(daemon, "flaky", 1).values()
    assert (flaky["state"], flaky["attempts"]) == ("dead", FAST_RETRY["max_attempts"])
    assert "Telegram server error (500 Internal Server Error: restart)" in flaky["last_error"]
    received = fake.received(301)
    assert len(received) == FAST_RETRY["max_attempts"]
    assert all(gap >= FAST_RETRY["delay"] for gap in gaps(received))

    [down] = settled(daemon, "down", 1).values()
    assert (down["state"], down["attempts"]) == ("dead", FAST_RETRY["max_attempts"])
    assert "connection to Telegram failed" in down["last_error"]
    assert [e["state"] for e in attempts_logged(daemon, down["id"], 3)] == [
        "queued",
        "queued",
        "dead",
    ]


@pytest.mark.parametrize(
    "prefetch",
    [
        pytest.param(1, id="the dispatcher holds the other chat back"),
        pytest.param(2, id="the worker holds the other chat back"),
    ],
)
def test_429_holds_back_the_whole_channel_for_retry_after(
    fake: FakeTelegramApi, make_daemon: DaemonFactory, prefetch: int
) -> None:
    # With prefetch 2 the worker process already holds the other chat's delivery when the 429
    # comes: it must not send it either.
    fake.set_default(Reply.too_many_requests(retry_after=2))
    daemon = start(make_daemon, channel("tg", fake.url, [401, 402], prefetch=prefetch))

    assert daemon.send("tg", "rate limited").status_code == 204
    [limited] = fake.wait_for(lambda records: len(records) >= 1)
    # Whatever comes next may only come after the cool-down, and is accepted.
    fake.set_default(Reply.ok())

    rows = settled(daemon, "tg", 2)
    records = fake.records
    assert limited.status == 429
    assert len(records) == 3, [(r.chat, r.status) for r in records]
    for later in records[1:]:
        assert later.status == 200
        assert later.at - limited.at >= 2.0, f"chat {later.chat} came too early"
    # A 429 is not a failed attempt: both deliveries made one.
    assert {row["attempts"] for row in rows.values()} == {1}
    assert {row["state"] for row in rows.values()} == {"delivered"}
    [logged, _] = attempts_logged(daemon, rows[limited.chat or ""]["id"], 2)
    assert (logged["outcome"], logged["retry_after"]) == ("rate_limited", 2)


@pytest.mark.parametrize(
    ("wrong_token", "answer"),
    [
        pytest.param("987654321:AAWr0ng-t0ken_that_BotFather_never_gave_x", "401 Unauthorized"),
        pytest.param("AAWr0ng-t0ken-without-the-bot-id_x", "404 Not Found", id="malformed"),
    ],
)
def test_a_wrong_token_keeps_deliveries_queued_until_it_is_fixed(
    fake: FakeTelegramApi, make_daemon: DaemonFactory, wrong_token: str, answer: str
) -> None:
    daemon = start(make_daemon, channel("tg", fake.url, 501), token=wrong_token)

    assert daemon.send("tg", "held until the token is right").status_code == 204

    # More tries than max_attempts, none charged: the delivery stays queued.
    fake.wait_for(lambda records: len(records) > FAST_RETRY["max_attempts"])

    def queued() -> dict[str, Any] | None:
        [row] = daemon.deliveries(channel="tg")
        return row if row["state"] == "queued" else None

    row = wait_for(queued, what="the delivery back in the queue")
    assert row["attempts"] == 0
    assert f"Telegram rejected the bot token ({answer})" in row["last_error"]
    assert {r.status for r in fake.received(501)} == {int(answer[:3])}
    # The cool-down doubles: 0.2 s, 0.4 s, 0.8 s ...
    first, second, third = gaps(fake.received(501))[:3]
    assert first >= 0.2 and second >= 0.4 and third >= 0.8
    status = daemon.channel_status("tg")
    assert status["state"] == "misconfigured"
    assert f"Telegram rejected the bot token ({answer})" in status["last_error"]
    table = daemon.ctl("status").stdout
    assert "misconfigured" in table and "rejected the bot token" in table
    logged = daemon.event("channel.misconfigured")
    assert logged is not None and logged["level"] == "error"
    assert "set params.token of channel 'tg'" in logged["error"]
    assert "${TELEGRAM_BOT_TOKEN}" in logged["error"]
    log_text = daemon.log.read_text(encoding="utf-8")
    assert wrong_token.rsplit(":", maxsplit=1)[-1] not in log_text + table

    assert daemon.terminate() == 0
    daemon.env = {"TELEGRAM_BOT_TOKEN": TOKEN}
    daemon.start()

    [row] = settled(daemon, "tg", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [r.text for r in fake.delivered(501)] == ["held until the token is right"]
    assert daemon.channel_status("tg")["state"] == "running"


def test_a_migrated_group_gets_the_message_at_its_new_id(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    old, new = -4001234, -1009876543210
    fake.script(old, Reply.migrate(to=new))
    daemon = start(make_daemon, channel("tg", fake.url, old))

    assert daemon.send("tg", "to the supergroup").status_code == 204

    [row] = settled(daemon, "tg", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    assert [r.status for r in fake.received(old)] == [400]
    assert [r.text for r in fake.delivered(new)] == ["to the supergroup"]
    warning = daemon.event("telegram.chat_migrated")
    assert warning is not None
    assert warning["level"] == "warning"
    assert (warning["old_chat_id"], warning["new_chat_id"]) == (old, new)
    assert f"set chat_id to {new}" in warning["hint"]

    # The process remembers the move: the next message goes straight to the new id.
    assert daemon.send("tg", "again").status_code == 204
    fake.wait_for(lambda records: len(records) >= 3)
    assert [r.text for r in fake.delivered(new)] == ["to the supergroup", "again"]
    assert len(fake.received(old)) == 1


# -- fan-out -------------------------------------------------------------------------------------


def test_fan_out_with_one_chat_failing_sends_once_to_the_others(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    # b fails temporarily first (so there is a retry), then for good.
    fake.script(602, Reply.server_error())
    fake.always(602, Reply.blocked())
    daemon = start(make_daemon, channel("tg", fake.url, [601, 602, 603]))

    response = daemon.send("tg", "to everybody")

    assert response.status_code == 204
    rows = settled(daemon, "tg", 3)
    assert {row["job_id"] for row in rows.values()} == {int(response.headers["X-Job-Id"])}
    assert (rows["601"]["state"], rows["601"]["attempts"]) == ("delivered", 1)
    assert (rows["603"]["state"], rows["603"]["attempts"]) == ("delivered", 1)
    assert (rows["602"]["state"], rows["602"]["attempts"]) == ("failed", 2)
    assert "Forbidden: bot was blocked by the user" in rows["602"]["last_error"]
    assert [r.text for r in fake.received(601)] == ["to everybody"]
    assert [r.text for r in fake.received(603)] == ["to everybody"]
    assert [r.status for r in fake.received(602)] == [500, 403]


# -- splitting -----------------------------------------------------------------------------------


def long_text(lines: int = 162) -> str:
    """About 10,000 characters of Cyrillic lines: three Telegram messages."""
    return "\n".join(
        f"Строка {i:03d}: сервер «db-{i}» ответил — всё в порядке, line {i}."
        for i in range(1, lines + 1)
    )


def test_split_long_sends_the_parts_in_order_and_without_it_the_text_is_refused(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    text = long_text()
    assert 9000 < len(text) < 12000
    daemon = start(
        make_daemon,
        channel("long", fake.url, 801, split_long=True, chat_interval=0.3),
        channel("short", fake.url, 802),
    )

    accepted = daemon.send("long", text)
    refused = daemon.send("short", text)

    assert accepted.status_code == 204, accepted.text
    assert refused.status_code == 422
    body = refused.json()
    assert (body["code"], body["field"]) == ("message_rejected", "message")
    assert str(len(text)) in body["description"]
    assert daemon.deliveries(channel="short") == []
    [row] = settled(daemon, "long", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    parts = fake.delivered(801)
    assert len(parts) == 3
    assert all(part.text is not None and len(part.text) <= 4096 for part in parts)
    # The parts were cut at line breaks, which the cut drops: joined with them, the original.
    assert "\n".join(part.text or "" for part in parts) == text
    # The parts of one message keep to the chat's pace too.
    assert all(gap >= 0.3 for gap in gaps(parts))
    assert fake.received(802) == []


def test_a_retried_split_message_resumes_after_the_parts_sent(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    text = long_text()
    fake.script(811, Reply.ok(), Reply.server_error())
    daemon = start(make_daemon, channel("long", fake.url, 811, split_long=True))

    assert daemon.send("long", text).status_code == 204

    [row] = settled(daemon, "long", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert [r.status for r in fake.received(811)] == [200, 500, 200, 200]
    parts = fake.delivered(811)
    assert "\n".join(part.text or "" for part in parts) == text
    [failed] = [e for e in attempts_logged(daemon, row["id"], 2) if e["outcome"] == "temporary"]
    assert failed["error"].startswith("part 2 of 3, after 1 sent: ")


@pytest.mark.parametrize("processes", [1, 2])
def test_the_next_message_to_a_chat_waits_for_every_part_of_a_split_one(
    fake: FakeTelegramApi, make_daemon: DaemonFactory, processes: int
) -> None:
    text = long_text()
    daemon = start(
        make_daemon,
        channel("long", fake.url, 821, processes=processes, split_long=True, chat_interval=0.5),
    )

    assert daemon.send("long", text).status_code == 204
    assert daemon.send("long", "after the parts").status_code == 204

    records = fake.wait_for(lambda records: len(records) >= 4)
    settled(daemon, "long", 2)
    texts = [r.text for r in records]
    assert texts[3] == "after the parts", "a message went out between the parts of another"
    assert "\n".join(str(t) for t in texts[:3]) == text
    assert min(gaps(records)) >= 0.5, gaps(records)


# -- pacing --------------------------------------------------------------------------------------


def test_each_chat_is_paced_without_holding_back_the_others(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    chats = [901, 902, 903]
    daemon = start(make_daemon, channel("tg", fake.url, chats, processes=2, chat_interval=1.0))

    for index in range(1, 6):
        assert daemon.send("tg", f"paced {index}").status_code == 204

    fake.wait_for(lambda records: len(records) >= 15, timeout=20)
    by_chat = {chat: fake.delivered(chat) for chat in chats}
    for chat, records in by_chat.items():
        assert [r.text for r in records] == [f"paced {i}" for i in range(1, 6)], chat
        assert min(gaps(records)) >= 0.9, (chat, gaps(records))
    # The i-th message of each chat went out together: the chats did not wait for each other.
    for round_ in zip(*by_chat.values(), strict=True):
        arrivals = [record.at for record in round_]
        assert max(arrivals) - min(arrivals) < 0.5, arrivals


# -- secrets -------------------------------------------------------------------------------------


def test_the_token_appears_nowhere_the_daemon_shows(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    fake.always(1002, Reply.blocked())
    fake.always(1003, Reply.server_error())
    fake.script(1004, Reply.slow(5))
    fake.script(1005, Reply.reset())
    fake.script(1006, Reply.bad_gateway_html())
    fake.script(1007, Reply.too_many_requests(retry_after=1))
    chats = [1001, 1002, 1003, 1004, 1005, 1006, 1007]
    quick = {**FAST_RETRY, "max_attempts": 2}
    daemon = start(
        make_daemon,
        channel("tg", fake.url, chats, processes=2, timeout=0.5, retry=quick),
        channel("down", closed_port_url(), 1008, retry=quick),
    )

    assert daemon.send("tg", "ok and not ok").status_code == 204
    assert daemon.send("down", "refused connection").status_code == 204
    refusals = [
        daemon.send("tg", "x" * 5000),
        daemon.send("tg", ""),
        daemon.send("tg", "late", delay="soon"),
        daemon.send("nowhere", "unknown channel"),
    ]
    assert [r.status_code for r in refusals] == [422, 422, 422, 404]

    settled(daemon, "tg", len(chats))
    [down] = settled(daemon, "down", 1).values()
    # The requests exception named the URL; it is kept, with the token redacted.
    assert "/bot***/sendMessage" in down["last_error"]
    check = subprocess.run(
        [str(BIN / "notifierd"), "check-config", "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **daemon.env},
    )
    assert check.returncode == 0, check.stderr
    shown = {
        "log": daemon.log.read_text(encoding="utf-8"),
        "status": daemon.ctl("status").stdout,
        "status --json": daemon.ctl("status", "--json").stdout,
        "jobs": daemon.ctl("jobs").stdout,
        "jobs --json": daemon.ctl("jobs", "--json", "--limit", "100").stdout,
        "jobs --deliveries": daemon.ctl("jobs", "--deliveries", "--limit", "100").stdout,
        "HTTP errors": "\n".join(r.text for r in refusals),
        "check-config": check.stdout + check.stderr,
    }
    assert "rejected" not in shown["status"]  # no misconfiguration: the token was right
    for secret in (TOKEN, quote(TOKEN, safe=""), SECRET):
        for where, text in shown.items():
            assert secret not in text, f"the token shows in {where}"
