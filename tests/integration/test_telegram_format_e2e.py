"""End-to-end tests of Telegram formatting: a real `bin/notifierd` and the fake Bot API with its
flood limits on, which parses HTML and MarkdownV2 with its own checker (not the worker's) and
refuses what Telegram refuses. A message the daemon accepts with a 204 must then be delivered:
markup Telegram would refuse is a 422 at intake, and a "can't parse entities" that still comes
back is answered by sending the text once more without its markup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, Recorded, Reply
from tests.fakes.telegram_entities import plain_text
from tests.harness import Daemon, wait_for
from tests.integration.conftest import DaemonFactory
from tests.integration.test_telegram_e2e import channel, settled, start

#: Telegram's own pace, as the worker's defaults have it (the `channel` helper turns it off).
PACED: dict[str, Any] = {"chat_interval": 1.0, "group_chat_interval": 3.0}


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(token=TOKEN) as api:  # flood limits on
        yield api


def refusal(daemon: Daemon, channel_name: str, message: str) -> str:
    """The description of the 422 the daemon answers `message` with."""
    response = daemon.send(channel_name, message)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["field"]) == ("message_rejected", "message")
    description: str = body["description"]
    return description


def shown(record: Recorded) -> str:
    """The text as Telegram shows it, by the fake's own reading of the markup."""
    assert record.text is not None
    return plain_text(record.text, record.params.get("parse_mode"))


def test_html_telegram_would_refuse_is_a_422_naming_the_place_and_escaped_is_delivered(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    daemon = start(make_daemon, channel("tg", fake.url, 901, format="html", **PACED))

    lt = refusal(daemon, "tg", "<b>CPU</b> load < 5")
    br = refusal(daemon, "tg", "line one<br>line two")
    unclosed = refusal(daemon, "tg", "<b>disk <i>full</b>")
    assert "can't parse entities" in lt
    assert 'Unsupported start tag "" at character 17' in lt
    assert 'write a literal "<" as "&lt;"' in lt
    assert 'Unsupported start tag "br" at character 9' in br
    assert 'Unmatched end tag at character 16, expected "</i>", found "</b>"' in unclosed
    assert daemon.deliveries(channel="tg") == []

    assert daemon.send("tg", "<b>CPU</b> load &lt; 5 — ok").status_code == 204
    [row] = settled(daemon, "tg", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [record] = fake.received(901)
    assert record.accepted
    assert (record.text, record.params["parse_mode"]) == ("<b>CPU</b> load &lt; 5 — ok", "HTML")
    assert shown(record) == "CPU load < 5 — ok"


def test_plain_text_is_sent_without_parse_mode_whatever_it_holds(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    daemon = start(make_daemon, channel("tg", fake.url, 902, **PACED))
    text = "load < 5 <br> *not bold* 1.5 [x](y)"
    assert daemon.send("tg", text).status_code == 204
    [row] = settled(daemon, "tg", 1).values()
    assert row["state"] == "delivered"
    [record] = fake.delivered(902)
    assert record.text == text
    assert "parse_mode" not in record.params


def test_markdownv2_telegram_would_refuse_is_a_422_and_escaped_is_delivered(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    daemon = start(make_daemon, channel("md", fake.url, 903, format="markdownv2", **PACED))

    dot = refusal(daemon, "md", "*Disk* 90% full.")
    dash = refusal(daemon, "md", "db-1 is down")
    bold = refusal(daemon, "md", "*Disk 90% full")
    assert "Character '.' is reserved and must be escaped with the preceding '\\' at " in dot
    assert "at character 16" in dot
    assert "write a literal '.' as '\\.'" in dot
    assert "Character '-' is reserved" in dash
    assert "at character 3" in dash
    assert "Can't find end of Bold entity at character 1" in bold

    text = "*Disk* 90% full\\. `db-1` \\(primary\\) [runbook](https://example.com/a\\)b)"
    assert daemon.send("md", text).status_code == 204
    [row] = settled(daemon, "md", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    [record] = fake.received(903)
    assert record.accepted
    assert (record.text, record.params["parse_mode"]) == (text, "MarkdownV2")
    assert shown(record) == "Disk 90% full. db-1 (primary) runbook"


def test_markup_telegram_still_refuses_goes_once_more_as_plain_text_with_a_warning(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    fake.script(904, Reply.cant_parse_entities())
    daemon = start(make_daemon, channel("tg", fake.url, 904, format="html", **PACED))

    assert daemon.send("tg", "<b>disk</b> full &amp; slow").status_code == 204

    [row] = settled(daemon, "tg", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    refused, plain = fake.received(904)
    assert (refused.status, refused.params["parse_mode"]) == (400, "HTML")
    assert plain.accepted
    assert plain.text == "disk full & slow"
    assert "parse_mode" not in plain.params
    warning = wait_for(
        lambda: daemon.event("telegram.markup_refused"), timeout=5, what="the warning line"
    )
    assert warning["level"] == "warning"
    assert "can't parse entities" in warning["error"]
    assert warning["delivery_id"] == row["id"]
    assert "plain text" in warning["hint"]


def test_long_html_is_split_into_parts_that_each_parse_with_entities_reopened(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    lines = [f"строка {i:03d}: load &lt; 5 &amp; <i>host-{i}</i> — ok" for i in range(330)]
    # One bold entity over every line: each cut falls inside it.
    text = "<b>" + "\n".join(lines) + "</b>"
    expected = plain_text(text, "HTML")
    assert 9000 < len(expected) < 4096 * 3
    daemon = start(
        make_daemon, channel("tg", fake.url, 905, format="html", split_long=True, **PACED)
    )

    assert daemon.send("tg", text).status_code == 204

    [row] = settled(daemon, "tg", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    parts = fake.received(905)
    assert len(parts) == 3
    assert all(part.accepted and part.params["parse_mode"] == "HTML" for part in parts)
    assert all(len(shown(part)) <= 4096 for part in parts)
    # Cut at line breaks, which the cut drops; bold closed at each cut and opened again.
    assert "\n".join(shown(part) for part in parts) == expected
    assert all(p.text and p.text.startswith("<b>") and p.text.endswith("</b>") for p in parts)
    assert fake.throttled() == []


def test_long_markdownv2_is_split_into_parts_that_each_parse(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    lines = [f"_строка {i:03d}_: 50\\% \\- `db-{i}` ok\\." for i in range(400)]
    text = "*" + "\n".join(lines) + "*"
    expected = plain_text(text, "MarkdownV2")
    assert 8192 < len(expected) < 4096 * 3
    daemon = start(
        make_daemon, channel("md", fake.url, 906, format="markdownv2", split_long=True, **PACED)
    )

    assert daemon.send("md", text).status_code == 204

    [row] = settled(daemon, "md", 1).values()
    assert (row["state"], row["attempts"]) == ("delivered", 1)
    parts = fake.received(906)
    assert len(parts) == 3
    assert all(part.accepted for part in parts)
    assert "\n".join(shown(part) for part in parts) == expected


def test_the_length_limit_is_on_the_text_after_parsing(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    daemon = start(make_daemon, channel("tg", fake.url, 907, format="html", **PACED))

    too_long = refusal(daemon, "tg", "<b>" + "x" * 4097 + "</b>")
    assert "4097 characters long once its html markup is removed" in too_long
    full = "<b>" + "x" * 4000 + "</b>" + "&amp;" * 96
    assert daemon.send("tg", full).status_code == 204

    [row] = settled(daemon, "tg", 1).values()
    assert row["state"] == "delivered"
    [record] = fake.delivered(907)
    assert record.text == full


def test_the_default_pace_draws_no_429_from_telegrams_limits(
    fake: FakeTelegramApi, make_daemon: DaemonFactory
) -> None:
    # The worker's own defaults: 1 message a second per chat, one per 3 s per group.
    daemon = make_daemon(
        "channels:\n"
        "  tg:\n"
        "    worker: telegram\n"
        f"    params: {{token: '${{TELEGRAM_BOT_TOKEN}}', api_url: '{fake.url}',"
        " chat_id: [908, -100908]}\n",
        env={"TELEGRAM_BOT_TOKEN": TOKEN},
    ).start()

    for i in range(3):
        assert daemon.send("tg", f"alert {i}").status_code == 204

    wait_for(
        lambda: (
            len(daemon.deliveries(channel="tg")) == 6
            and all(row["state"] == "delivered" for row in daemon.deliveries(channel="tg"))
        ),
        timeout=30,
        what="6 deliveries",
    )
    assert fake.throttled() == []
    assert [r.text for r in fake.delivered(908)] == ["alert 0", "alert 1", "alert 2"]
    assert [r.text for r in fake.delivered(-100908)] == ["alert 0", "alert 1", "alert 2"]
