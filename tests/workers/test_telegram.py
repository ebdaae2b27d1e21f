"""The Telegram worker, called in-process against the fake Bot API server."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from pydantic import ValidationError
from structlog.testing import capture_logs

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.messages import Delivery
from notifierd.redaction import Redactor
from notifierd.workers.telegram import (
    TelegramParams,
    TelegramWorker,
    split_text,
)
from notifierd.workers.telegram.markup import utf16_len
from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, Reply
from tests.workers.leaving import Left, send_in_worker_process

MakeWorker = Callable[..., TelegramWorker]
_ids = itertools.count(1)

CYRILLIC = "Привет, мир!\nСервер «db-1» недоступен — 3 попытки.\r\n\tЁлка № 5; «кавычки» …\n"


def delivery(message: str, recipient: int | str = 1001, delivery_id: int | None = None) -> Delivery:
    """A delivery as the dispatcher hands it out: the recipient is the chat id as a string."""
    return Delivery(
        id=next(_ids) if delivery_id is None else delivery_id,
        lease_token=1,
        channel="alerts",
        recipient=str(recipient),
        message=message,
        attempt=1,
    )


def params(**overrides: Any) -> TelegramParams:
    return TelegramParams(**({"token": TOKEN, "chat_id": 1001} | overrides))


# -- parameters --------------------------------------------------------------------------------


def test_params_defaults() -> None:
    p = params()
    assert p.chat_id == (1001,)
    assert p.api_url == "https://api.telegram.org"
    assert p.format == "text"
    assert (p.disable_notification, p.protect_content, p.link_preview) == (False, False, True)
    assert (p.split_long, p.timeout) == (False, 10.0)
    assert (p.rate_per_second, p.chat_interval, p.group_chat_interval) == (30.0, 1.0, 3.0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (-1001234567890, (-1001234567890,)),
        ("@mychannel", ("@mychannel",)),
        ("-1001234567890", (-1001234567890,)),  # came through an environment variable
        ([42, "@news", -7], (42, "@news", -7)),
    ],
)
def test_chat_id_accepts_ids_usernames_and_lists(
    given: object, expected: tuple[object, ...]
) -> None:
    assert params(chat_id=given).chat_id == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mychannel", "chat_id must be a non-zero integer chat id .* got 'mychannel'"),
        ("@", "got '@'"),
        ("@my channel", "got '@my channel'"),
        (0, "got 0"),
        (True, "got True"),
        (1.5, "got 1.5"),
        (None, "got None"),
        ([1, "two"], "chat_id item 2 must be .* got 'two'"),
        ([1, [2]], r"chat_id item 2 must be .* got \[2\]"),
        ([], "chat_id must name at least one chat"),
        ([5, "@a", 5], "chat_id lists 5 twice"),
    ],
)
def test_chat_id_rejects_anything_else_clearly(given: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        params(chat_id=given)
    assert caught.value.errors()[0]["loc"] == ("chat_id",)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"format": "markdown"}, "format"),
        ({"format": "bbcode"}, "format"),
        ({"api_url": "api.telegram.org"}, "api_url"),
        ({"api_url": "ftp://api.telegram.org"}, "api_url"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 120}, "timeout"),
        ({"message_thread_id": 0}, "message_thread_id"),
        ({"rate_per_second": 0}, "rate_per_second"),
        ({"chat_interval": -1}, "chat_interval"),
        ({"max_parts": 0}, "max_parts"),
        ({"token": ""}, "token"),
        ({"link_preview": "sometimes"}, "link_preview"),
        ({"chatid": 5}, "chatid"),
    ],
)
def test_invalid_params_name_the_key(overrides: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as caught:
        params(**overrides)
    assert [error["loc"] for error in caught.value.errors()] == [(loc,)]


def test_token_is_required() -> None:
    with pytest.raises(ValidationError) as caught:
        TelegramParams(chat_id=1)  # type: ignore[call-arg]
    assert caught.value.errors()[0]["loc"] == ("token",)


def test_params_normalise_what_operators_get_wrong() -> None:
    p = params(token=f" {TOKEN}\n", api_url="http://127.0.0.1:8081/", link_preview="off")
    assert p.token.get_secret_value() == TOKEN  # a token file's trailing newline
    assert p.api_url == "http://127.0.0.1:8081"
    assert p.link_preview is False  # YAML 1.1's on/off, also as strings


def test_params_never_show_the_token() -> None:
    p = params()
    assert TOKEN not in repr(p)
    assert TOKEN not in str(p)
    assert TOKEN not in repr(TelegramWorker("alerts", p))


# -- what the core asks the class ---------------------------------------------------------------


def test_recipients_fan_out_one_per_chat_as_strings() -> None:
    p = params(chat_id=[-1001234567890, "@news", 42])
    assert TelegramWorker.recipients(p) == ["-1001234567890", "@news", "42"]
    assert TelegramWorker.recipients(params(chat_id=7)) == ["7"]


def test_channel_rate() -> None:
    assert TelegramWorker.channel_rate(params()) == 30.0
    assert TelegramWorker.channel_rate(params(rate_per_second=5)) == 5.0
    assert TelegramWorker.channel_rate(params(rate_per_second=None)) is None


def test_recipient_interval_private_chats_groups_and_channels() -> None:
    p = params()
    assert TelegramWorker.recipient_interval(p, "42") == 1.0
    assert TelegramWorker.recipient_interval(p, "-4567") == 3.0  # a group: 20 per minute
    assert TelegramWorker.recipient_interval(p, "-1001234567890") == 3.0
    assert TelegramWorker.recipient_interval(p, "@news") == 3.0
    custom = params(chat_interval=0.5, group_chat_interval=6)
    assert TelegramWorker.recipient_interval(custom, "42") == 0.5
    assert TelegramWorker.recipient_interval(custom, "-42") == 6.0


def test_length_is_one_message_unless_split_long() -> None:
    plain = params()
    assert TelegramWorker.check_message(plain, CYRILLIC) is None
    assert TelegramWorker.check_message(plain, "я" * 4096) is None
    assert TelegramWorker.check_message(plain, "я" * 4097) == (
        "message is 4097 characters long; this channel accepts at most 4096"
    )
    split = params(split_long=True, max_parts=3)
    assert TelegramWorker.check_message(split, "я" * 4097) is None
    assert TelegramWorker.check_message(split, "я\n" * 3 * 2048) is None
    reason = TelegramWorker.check_message(split, "я" * (3 * 4096 + 1))
    assert reason == "message is 12289 characters long; this channel accepts at most 12288"


def test_length_counts_characters_as_telegram_does() -> None:
    # The Bot API server counts code points (TDLib's utf8_length): an emoji is one character,
    # though two UTF-16 units.
    assert TelegramWorker.check_message(params(), "🔥" * 4096) is None
    assert TelegramWorker.check_message(params(), "🔥" * 4097) is not None


def test_check_message_counts_the_parts_with_split_long() -> None:
    p = params(split_long=True, max_parts=2)
    assert TelegramWorker.check_message(p, "word " * 1500) is None  # 7500 characters: 2 parts
    # 8191 characters fit within 2 * 4096, but cut at spaces they make 3 messages.
    reason = TelegramWorker.check_message(p, ("x" * 4000 + " ") * 2 + "x" * 189)
    assert reason is not None
    assert "3 Telegram messages" in reason
    assert "max_parts" in reason
    assert TelegramWorker.check_message(params(), "x" * 9000) == (
        "message is 9000 characters long; this channel accepts at most 4096"
    )


# -- splitting ---------------------------------------------------------------------------------


def test_split_leaves_a_short_text_alone() -> None:
    assert split_text(CYRILLIC) == [CYRILLIC]
    assert split_text("x" * 4096) == ["x" * 4096]


def test_split_cuts_at_the_last_newline_before_the_limit() -> None:
    text = "a" * 3000 + "\n" + "b" * 500 + " c\n" + "d" * 3000
    assert split_text(text) == ["a" * 3000 + "\n" + "b" * 500 + " c", "d" * 3000]


def test_split_falls_back_to_the_last_space_then_a_hard_cut() -> None:
    spaced = "a" * 3000 + " " + "b" * 3000
    assert split_text(spaced) == ["a" * 3000, "b" * 3000]
    solid = "z" * 9000
    assert split_text(solid) == ["z" * 4096, "z" * 4096, "z" * 808]


def test_split_uses_a_separator_just_past_the_limit() -> None:
    assert split_text("a" * 4096 + "\nb") == ["a" * 4096, "b"]


def test_split_keeps_order_and_every_character() -> None:
    lines = [f"строка {i}: {'текст ' * (i % 40)}" for i in range(600)]
    text = "\n".join(lines)
    parts = split_text(text)
    assert len(parts) > 2
    assert all(utf16_len(part) <= 4096 for part in parts)
    assert "\n".join(parts) == text  # every cut was at a newline, which is dropped


def test_split_drops_parts_that_are_only_whitespace() -> None:
    assert split_text("a" + "\n" * 5000 + "b") == ["a" + "\n" * 4095, "\n" * 904 + "b"]
    assert split_text(" " * 5000 + "b") == [" " * 903 + "b"]


def test_split_counts_utf16_units_and_never_splits_a_character() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units
    parts = split_text(text)
    assert parts == ["😀" * 2048, "😀" * 952]
    assert utf16_len("😀") == 2


# -- redaction ---------------------------------------------------------------------------------


# A worker process removes the channel's secrets (TelegramWorker.secrets: the token) from
# everything it tells its parent (notifierd.redaction, processes.child.RedactingPipe).


def test_the_token_is_redacted_raw_and_url_quoted() -> None:
    redact = Redactor(TelegramWorker.secrets(params())).text
    assert redact(f"POST /bot{TOKEN}/sendMessage") == "POST /bot***/sendMessage"
    quoted = TOKEN.replace(":", "%3A")
    assert redact(f"url=/bot{quoted}/x") == "url=/bot***/x"
    assert redact("nothing here") == "nothing here"
    assert Redactor([""]).text("nothing here") == "nothing here"


def test_the_token_is_redacted_from_real_requests_exceptions(
    telegram_api: FakeTelegramApi, closed_port_url: str
) -> None:
    """requests puts the URL, and so the token, in its exceptions' text."""
    telegram_api.always(1, Reply.slow(30))
    caught: list[requests.RequestException] = []
    with requests.Session() as session:
        for url, timeout in ((closed_port_url, 2.0), (telegram_api.url, 0.2)):
            with pytest.raises(requests.RequestException) as exc_info:
                session.post(
                    f"{url}/bot{TOKEN}/sendMessage",
                    json={"chat_id": 1, "text": "x"},
                    timeout=timeout,
                )
            caught.append(exc_info.value)
    refused, timed_out = caught
    redact = Redactor(TelegramWorker.secrets(params())).text
    assert isinstance(refused, requests.ConnectionError)
    assert TOKEN in str(refused)  # the reason for all this
    assert "/bot***/sendMessage" in redact(str(refused))
    assert TOKEN not in redact(str(refused))
    assert isinstance(timed_out, requests.ReadTimeout)
    assert TOKEN not in redact(str(timed_out))


# -- sending -----------------------------------------------------------------------------------


def test_cyrillic_multiline_text_arrives_identical(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    make_worker().send(delivery(CYRILLIC))
    [record] = telegram_api.delivered(1001)
    assert record.text == CYRILLIC
    assert record.method == "sendMessage"
    assert record.token == TOKEN
    assert record.content_type == "application/json"
    assert json.loads(record.body) == {"chat_id": 1001, "text": CYRILLIC}
    assert "Привет, мир!".encode() in record.body  # UTF-8 on the wire, not \u escapes


def test_options_are_passed_through(telegram_api: FakeTelegramApi, make_worker: MakeWorker) -> None:
    worker = make_worker(
        format="markdownv2",
        disable_notification=True,
        protect_content=True,
        message_thread_id=77,
        link_preview=False,
    )
    worker.send(delivery("*bold* https://example\\.com"))
    [record] = telegram_api.delivered(1001)
    assert record.params == {
        "chat_id": 1001,
        "text": "*bold* https://example\\.com",
        "parse_mode": "MarkdownV2",
        "disable_notification": True,
        "protect_content": True,
        "message_thread_id": 77,
        "link_preview_options": {"is_disabled": True},
    }


@pytest.mark.parametrize(
    ("fmt", "text", "mode"),
    [("html", "<b>x</b> &lt; 5", "HTML"), ("MarkdownV2", "*x* < 5\\.", "MarkdownV2")],
)
def test_each_format_is_sent_with_its_parse_mode(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker, fmt: str, text: str, mode: str
) -> None:
    make_worker(format=fmt).send(delivery(text))
    [record] = telegram_api.delivered(1001)
    assert (record.text, record.params["parse_mode"]) == (text, mode)


def test_plain_text_goes_without_parse_mode(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    make_worker().send(delivery("load < 5 <br> *not bold* 1.5"))
    [record] = telegram_api.delivered(1001)
    assert "parse_mode" not in record.params


@pytest.mark.parametrize(
    ("given", "meant"),
    [("HTML", "html"), ("html", "html"), ("MarkdownV2", "markdownv2"), (None, "text")],
)
def test_parse_mode_is_read_as_format(given: str | None, meant: str) -> None:
    assert params(parse_mode=given).format == meant
    assert params(parse_mode=given, format=meant).format == meant


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"parse_mode": "Markdown"}, "legacy Markdown is not supported"),
        ({"parse_mode": "BBCode"}, "set format: html or format: markdownv2"),
        ({"parse_mode": "HTML", "format": "markdownv2"}, "disagree; keep only format"),
        ({"parse_mode": "HTML", "format": "text"}, "disagree; keep only format"),
    ],
)
def test_parse_mode_that_cannot_be_a_format_is_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        params(**overrides)


def test_chat_ids_go_out_as_numbers_or_usernames(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    worker = make_worker(chat_id=[-1001234567890, "@news"])
    for recipient in TelegramWorker.recipients(worker.params):
        worker.send(delivery("hi", recipient))
    assert telegram_api.delivered(-1001234567890)[0].params["chat_id"] == -1001234567890
    assert telegram_api.delivered("@news")[0].params["chat_id"] == "@news"


def test_one_session_keeps_the_connection_alive(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    worker = make_worker()
    for _ in range(3):
        worker.send(delivery("hi"))
    assert len({record.peer for record in telegram_api.records}) == 1


def test_fan_out_with_one_chat_failing(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(202, Reply.blocked())
    worker = make_worker(chat_id=[101, 202, 303])
    outcomes: dict[str, str] = {}
    for recipient in TelegramWorker.recipients(worker.params):
        try:
            worker.send(delivery("всем", recipient))
            outcomes[recipient] = "delivered"
        except DeliveryError as exc:
            outcomes[recipient] = type(exc).__name__
    assert outcomes == {"101": "delivered", "202": "PermanentFailure", "303": "delivered"}
    assert [r.text for r in telegram_api.delivered(101) + telegram_api.delivered(303)] == [
        "всем",
        "всем",
    ]


# -- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "description"),
    [
        (Reply.chat_not_found(), "Bad Request: chat not found"),
        (Reply.message_too_long(), "Bad Request: message is too long"),
        (Reply.cant_parse_entities(), "Bad Request: can't parse entities: Can't find end"),
        (Reply.blocked(), "Forbidden: bot was blocked by the user"),
        (Reply.cant_initiate(), "Forbidden: bot can't initiate conversation with a user"),
        (Reply.kicked(), "Forbidden: bot was kicked from the group chat"),
    ],
)
def test_refusals_are_permanent_with_telegrams_description(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker, reply: Reply, description: str
) -> None:
    telegram_api.always(1001, reply)
    with pytest.raises(PermanentFailure) as caught:
        make_worker().send(delivery("hi"))
    assert description in caught.value.message
    assert f"({reply.status} " in caught.value.message
    assert "chat 1001" in caught.value.message


def test_real_server_checks_make_permanent_failures(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    """Not scripted: the fake refuses a text over 4096 characters, as Telegram does."""
    with pytest.raises(PermanentFailure, match="message is too long"):
        make_worker().send(delivery("x" * 4097))


@pytest.mark.parametrize("reply", [Reply.unauthorized(), Reply.not_found()])
def test_bad_token_answers_mean_the_channel_is_misconfigured(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker, reply: Reply
) -> None:
    telegram_api.always(1001, reply)
    with pytest.raises(ChannelMisconfigured) as caught:
        make_worker().send(delivery("hi"))
    message = caught.value.message
    assert f"({reply.status} {reply.description})" in message
    assert "params.token" in message
    assert "'alerts'" in message
    assert "TELEGRAM_BOT_TOKEN" in message


@pytest.mark.parametrize(
    ("token", "status"),
    [("987654321:AAwrong-but-well-formed_token_xyz", 401), ("not-a-token", 404)],
)
def test_the_fake_checks_the_token_like_telegram(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker, token: str, status: int
) -> None:
    with pytest.raises(ChannelMisconfigured) as caught:
        make_worker(token=token).send(delivery("hi"))
    assert f"({status} " in caught.value.message
    assert token not in str(caught.value)
    assert telegram_api.records[0].status == status
    assert telegram_api.delivered(1001) == []


def test_429_waits_exactly_retry_after(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.script(1001, Reply.too_many_requests(37))
    worker = make_worker()
    with pytest.raises(RateLimited) as caught:
        worker.send(delivery("hi"))
    assert caught.value.retry_after == 37
    assert "Too Many Requests: retry after 37" in caught.value.message
    worker.send(delivery("again"))  # the script is used up: ok
    assert [r.text for r in telegram_api.delivered(1001)] == ["again"]


def test_429_without_parameters_uses_the_retry_after_header(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(1001, Reply("error", 429, "Too Many Requests", None, "7"))
    with pytest.raises(RateLimited) as caught:
        make_worker().send(delivery("hi"))
    assert caught.value.retry_after == 7


def test_429_without_any_delay_leaves_it_to_the_channel_policy(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(1001, Reply.error(429, "Too Many Requests"))
    with pytest.raises(RateLimited) as caught:
        make_worker().send(delivery("hi"))
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply.server_error(), "server error (500 Internal Server Error: restart)"),
        (Reply.bad_gateway_html(), "HTTP 502 with a body that is not Bot API JSON (text/html)"),
        (Reply.non_json(), "HTTP 200 with a body that is not Bot API JSON (text/plain)"),
        (Reply.slow(30), "did not answer within 0.3 s (ReadTimeout)"),
        (Reply.reset(), "connection to Telegram failed: ('Connection aborted."),
        (Reply.reset_mid_body(), 'connection to Telegram failed: ("Connection broken'),
    ],
)
def test_transient_trouble_is_temporary(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker, reply: Reply, words: str
) -> None:
    telegram_api.script(1001, reply)
    worker = make_worker(timeout=0.3)
    with pytest.raises(TemporaryFailure) as caught:
        worker.send(delivery("hi"))
    assert words in caught.value.message
    assert caught.value.retry_after is None
    worker.send(delivery("after"))  # the session survives: the next one goes through
    assert telegram_api.delivered(1001)[-1].text == "after"


def test_slow_answer_was_recorded_before_the_timeout(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    """A timeout may hide a delivered message: a retry can duplicate it (no idempotency key)."""
    telegram_api.script(1001, Reply.slow(30))
    with pytest.raises(TemporaryFailure):
        make_worker(timeout=0.3).send(delivery("maybe sent"))
    assert [r.text for r in telegram_api.delivered(1001)] == ["maybe sent"]


def test_connection_refused_is_temporary(closed_port_url: str, make_worker: MakeWorker) -> None:
    worker = make_worker(api_url=closed_port_url)
    with pytest.raises(TemporaryFailure, match="connection to Telegram failed"):
        worker.send(delivery("hi"))
    # The requests exception names the URL: it is kept, the token redacted.
    left = send_in_worker_process(worker, delivery("hi"))
    assert "/bot***/sendMessage" in (left.error or "")


def test_an_html_404_means_api_url_is_wrong(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(1001, Reply("html", 404))
    with pytest.raises(ChannelMisconfigured, match="does not look like a Bot API server"):
        make_worker().send(delivery("hi"))


def test_group_upgraded_to_supergroup_resends_to_the_new_id(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(-4567, Reply.migrate(to=-1009876543210))
    worker = make_worker(chat_id=-4567)
    with capture_logs() as logs:
        worker.send(delivery("первое", -4567))
        worker.send(delivery("второе", -4567))
    assert [r.text for r in telegram_api.delivered(-1009876543210)] == ["первое", "второе"]
    # This process remembers the move: the second message went straight to the new id.
    assert [r.status for r in telegram_api.received(-4567)] == [400]
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["event"] == "telegram.chat_migrated"
    assert (warning["old_chat_id"], warning["new_chat_id"]) == (-4567, -1009876543210)
    assert "set chat_id to -1009876543210" in warning["hint"]
    assert "'alerts'" in warning["hint"]


def test_a_chat_that_keeps_migrating_fails(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    for old, new in itertools.pairwise([-1, -2, -3, -4, -5, -6]):
        telegram_api.always(old, Reply.migrate(to=new))
    with pytest.raises(PermanentFailure, match="kept migrating"):
        make_worker(chat_id=-1).send(delivery("hi", -1))


# -- long text ---------------------------------------------------------------------------------


def long_text(lines: int = 250) -> str:
    """About 10 000 characters: three messages."""
    return "\n".join(f"{i:04} Длинная строка журнала с кириллицей" for i in range(lines))


def test_split_long_sends_every_part_in_order(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    text = long_text()
    make_worker(split_long=True).send(delivery(text))
    texts = [r.text or "" for r in telegram_api.delivered(1001)]
    assert texts == split_text(text)
    assert len(texts) == 3
    assert "\n".join(texts) == text


def test_without_split_long_a_long_text_goes_as_one_and_is_refused(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    with pytest.raises(PermanentFailure, match="message is too long"):
        make_worker().send(delivery(long_text()))
    assert len(telegram_api.received(1001)) == 1


def test_parts_keep_to_the_chats_pace(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    make_worker(split_long=True, chat_interval=0.2).send(delivery(long_text()))
    arrivals = [r.at for r in telegram_api.delivered(1001)]
    assert len(arrivals) == 3
    assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(arrivals))


def test_the_next_message_keeps_to_the_chats_pace_after_the_parts(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    worker = make_worker(split_long=True, chat_interval=0.2)
    worker.send(delivery(long_text()))
    worker.send(delivery("next"))
    arrivals = [r.at for r in telegram_api.delivered(1001)]
    assert len(arrivals) == 4
    assert arrivals[3] - arrivals[2] >= 0.19


def test_a_retry_in_the_same_process_resumes_after_the_sent_parts(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.script(1001, Reply.ok(), Reply.server_error())
    worker = make_worker(split_long=True)
    text = long_text()
    with pytest.raises(TemporaryFailure) as caught:
        worker.send(delivery(text, delivery_id=500))
    assert caught.value.message.startswith("part 2 of 3, after 1 sent: Telegram server error")
    worker.send(delivery(text, delivery_id=500))
    assert [r.text for r in telegram_api.delivered(1001)] == split_text(text)


def test_a_retry_in_another_process_sends_every_part_again(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    """Documented at-least-once: part progress lives in one process's memory only."""
    telegram_api.script(1001, Reply.ok(), Reply.too_many_requests(3))
    text = long_text()
    with pytest.raises(RateLimited) as caught:
        make_worker(split_long=True).send(delivery(text, delivery_id=501))
    assert caught.value.retry_after == 3  # kept, and still a rate limit, through the wrapping
    make_worker(split_long=True).send(delivery(text, delivery_id=501))
    parts = split_text(text)
    assert [r.text for r in telegram_api.delivered(1001)] == [parts[0], *parts]


def test_a_refused_part_says_which_one(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.script(1001, Reply.ok(), Reply.ok(), Reply.cant_parse_entities())
    with pytest.raises(PermanentFailure, match=r"^part 3 of 3, after 2 sent: .*can't parse"):
        make_worker(split_long=True).send(delivery(long_text()))


# -- formatting ------------------------------------------------------------------------------


def test_markup_telegram_refuses_is_sent_once_more_as_plain_text(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.script(1001, Reply.cant_parse_entities())
    with capture_logs() as logs:
        make_worker(format="html").send(delivery("<b>disk</b> &lt; 5%", delivery_id=601))
    refused, plain = telegram_api.received(1001)
    assert (refused.status, refused.params["parse_mode"]) == (400, "HTML")
    assert plain.accepted
    assert plain.params == {"chat_id": 1001, "text": "disk < 5%"}
    [warning] = [line for line in logs if line["event"] == "telegram.markup_refused"]
    assert warning["log_level"] == "warning"
    assert warning["delivery_id"] == 601
    assert "can't parse entities" in warning["error"]


def test_plain_text_refused_as_markup_is_a_permanent_failure(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(1001, Reply.cant_parse_entities())
    with pytest.raises(PermanentFailure, match="can't parse entities"):
        make_worker(format="html").send(delivery("<b>x</b>"))
    assert [r.params.get("parse_mode") for r in telegram_api.received(1001)] == ["HTML", None]


def test_markup_queued_before_a_format_change_goes_as_plain_text(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    with capture_logs() as logs:
        make_worker(format="markdownv2").send(delivery("Disk 90% full."))
    [record] = telegram_api.delivered(1001)
    assert record.params == {"chat_id": 1001, "text": "Disk 90% full."}
    assert [line["event"] for line in logs if line["log_level"] == "warning"] == [
        "telegram.markup_invalid"
    ]


def test_split_html_parts_are_rendered_with_entities_reopened(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    text = "<i>" + long_text().replace("Длинная", "<b>Длинная</b> &amp;") + "</i>"
    make_worker(format="html", split_long=True).send(delivery(text))
    parts = telegram_api.received(1001)
    assert len(parts) == 3
    assert all(part.accepted and part.params["parse_mode"] == "HTML" for part in parts)
    assert all((part.text or "").startswith("<i>") for part in parts)
    assert all((part.text or "").endswith("</i>") for part in parts)


# -- the token stays secret --------------------------------------------------------------------

FAILURES = [
    Reply.chat_not_found(),
    Reply.blocked(),
    Reply.unauthorized(),
    Reply.not_found(),
    Reply.too_many_requests(2),
    Reply.server_error(),
    Reply.bad_gateway_html(),
    Reply.non_json(),
    Reply.slow(30),
    Reply.reset(),
    Reply.reset_mid_body(),
    Reply("html", 404),
    Reply.error(400, f"Bad Request: chat {TOKEN} not found"),  # an answer quoting the token
]


@pytest.mark.parametrize("reply", FAILURES, ids=lambda reply: f"{reply.kind}-{reply.status}")
def test_no_failure_reveals_the_token(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker, reply: Reply
) -> None:
    telegram_api.always(1001, reply)
    worker = make_worker(timeout=0.3)
    with pytest.raises(DeliveryError) as caught:
        worker.send(delivery("hi"))
    assert_unchained(caught.value)
    left = send_in_worker_process(worker, delivery("hi"))
    assert left.error is not None
    assert_secret(left)


def test_no_transport_error_reveals_the_token(
    closed_port_url: str, make_worker: MakeWorker
) -> None:
    worker = make_worker(api_url=closed_port_url)
    with pytest.raises(DeliveryError) as caught:
        worker.send(delivery("hi"))
    assert_unchained(caught.value)
    assert_secret(send_in_worker_process(worker, delivery("hi")))


def test_success_logs_do_not_reveal_the_token(
    telegram_api: FakeTelegramApi, make_worker: MakeWorker
) -> None:
    telegram_api.always(-4567, Reply.migrate(to=-1009876543210))
    left = send_in_worker_process(make_worker(split_long=True), delivery(long_text(), -4567))
    assert left.error is None
    assert [entry["event"] for entry in left.events] == [
        "telegram.sending",
        "telegram.chat_migrated",
        "telegram.sending",
        "telegram.sending",
        "telegram.delivered",
    ]
    # urllib3's debug lines, which carry the request URL and so the token, stay in the process.
    assert not [entry for entry in left.events if entry["logger"].startswith("urllib3")]
    assert_secret(left)


def assert_unchained(error: BaseException) -> None:
    """The requests exception, whose text holds the URL, is neither cause nor context."""
    assert error.__cause__ is None
    assert error.__context__ is None


def assert_secret(left: Left) -> None:
    for text in left.texts():
        assert TOKEN not in text
        assert TOKEN.split(":")[1] not in text  # not even the secret half


def test_send_before_open_is_a_programming_error() -> None:
    worker = TelegramWorker("alerts", params())
    with pytest.raises(RuntimeError, match="before open"):
        worker.send(delivery("hi"))
