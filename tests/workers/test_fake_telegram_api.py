"""The fake Bot API itself: what end-to-end tests rely on beyond the worker tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import requests

from tests.fakes.telegram_api import TOKEN, FakeTelegramApi, RateLimits, Reply

ROOT = Path(__file__).resolve().parents[2]


def send(url: str, **fields: object) -> requests.Response:
    with requests.Session() as session:
        return session.post(f"{url}/bot{TOKEN}/sendMessage", json=fields, timeout=5)


def test_answers_like_the_bot_api(telegram_api: FakeTelegramApi) -> None:
    answer = send(telegram_api.url, chat_id=-1001, text="  привет  ")
    assert answer.status_code == 200
    message = answer.json()["result"]
    assert message["message_id"] == 1
    assert message["chat"] == {"id": -1001, "type": "group", "title": "Test group"}
    assert message["text"] == "привет"
    assert send(telegram_api.url, chat_id=-1001, text="x").json()["result"]["message_id"] == 2
    assert send(telegram_api.url, chat_id=1, text=" \n").json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message text is empty",
    }
    assert send(telegram_api.url, chat_id=1, text="x", parse_mode="BBCode").status_code == 400
    assert send(telegram_api.url, chat_id=1, text="x", parse_mode="html").status_code == 200


def test_wrong_method_is_not_found(telegram_api: FakeTelegramApi) -> None:
    with requests.Session() as session:
        answer = session.post(f"{telegram_api.url}/bot{TOKEN}/sendPigeon", timeout=5)
    assert (answer.status_code, answer.json()["description"]) == (404, "Not Found")


def test_accepts_form_bodies_as_ptb_sends_them(telegram_api: FakeTelegramApi) -> None:
    with requests.Session() as session:
        answer = session.post(
            f"{telegram_api.url}/bot{TOKEN}/sendMessage",
            data={"chat_id": "42", "text": "форма", "disable_notification": "true"},
            timeout=5,
        )
    assert answer.status_code == 200
    [record] = telegram_api.delivered(42)
    assert record.params == {"chat_id": "42", "text": "форма", "disable_notification": "true"}


def test_scripts_run_in_order_then_fall_back(telegram_api: FakeTelegramApi) -> None:
    telegram_api.script(7, Reply.server_error(), times=2)
    telegram_api.script(7, Reply.blocked())
    statuses = [send(telegram_api.url, chat_id=7, text="x").status_code for _ in range(4)]
    assert statuses == [500, 500, 403, 200]
    telegram_api.always(7, Reply.kicked())
    telegram_api.set_default(Reply.chat_not_found())
    assert send(telegram_api.url, chat_id=7, text="x").status_code == 403
    assert send(telegram_api.url, chat_id=8, text="x").status_code == 400
    assert [r.status for r in telegram_api.received(7)] == [500, 500, 403, 200, 403]


def test_wait_for_returns_once_the_condition_holds(telegram_api: FakeTelegramApi) -> None:
    sender = threading.Thread(
        target=send, args=(telegram_api.url,), kwargs={"chat_id": 1, "text": "x"}
    )
    sender.start()
    records = telegram_api.wait_for(lambda records: len(records) == 1, timeout=5)
    sender.join()
    assert records[0].text == "x"


def test_scripting_over_http(telegram_api: FakeTelegramApi) -> None:
    base = f"{telegram_api.url}/_fake"
    with requests.Session() as control:
        control.post(
            f"{base}/script",
            json={"chat_id": 5, "replies": [{"kind": "error", "status": 403, "description": "no"}]},
            timeout=5,
        ).raise_for_status()
        control.post(
            f"{base}/always",
            json={"chat_id": 5, "reply": {"kind": "html", "status": 502}},
            timeout=5,
        ).raise_for_status()
        assert [send(telegram_api.url, chat_id=5, text="x").status_code for _ in range(2)] == [
            403,
            502,
        ]
        records = control.get(f"{base}/records", timeout=5).json()
        assert [(r["status"], json.loads(r["body"])["chat_id"]) for r in records] == [
            (403, 5),
            (502, 5),
        ]
        control.post(f"{base}/reset", timeout=5).raise_for_status()
        assert control.get(f"{base}/records", timeout=5).json() == []
        assert send(telegram_api.url, chat_id=5, text="x").status_code == 200


def test_runs_as_its_own_process() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram_api", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        try:
            assert url.startswith("http://127.0.0.1:")
            assert send(url, chat_id=1, text="hi").json()["ok"] is True
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0


def test_refuses_markup_with_telegrams_texts_and_counts_length_after_parsing(
    telegram_api: FakeTelegramApi,
) -> None:
    def answer(text: str, mode: str) -> tuple[int, str]:
        body = send(telegram_api.url, chat_id=1, text=text, parse_mode=mode).json()
        return body.get("error_code", 200), body.get("description", "")

    assert answer("load < 5", "HTML") == (
        400,
        'Bad Request: can\'t parse entities: Unsupported start tag "" at byte offset 5',
    )
    assert answer("Disk full.", "MarkdownV2") == (
        400,
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
        "with the preceding '\\'",
    )
    assert answer("load < 5", "") == (200, "")
    assert answer("<b>" + "x" * 4096 + "</b>", "HTML") == (200, "")
    assert answer("<b>" + "x" * 4097 + "</b>", "HTML") == (400, "Bad Request: message is too long")
    assert answer("🔥" * 4096, "") == (200, "")
    assert answer("🔥" * 4097, "") == (400, "Bad Request: message is too long")
    assert answer("<b> </b>", "HTML") == (400, "Bad Request: message text is empty")
    [accepted, *_] = telegram_api.delivered(1)
    assert accepted.description == ""
    assert telegram_api.records[0].description.startswith("Bad Request: can't parse entities")


def test_answers_429_over_telegrams_flood_limits() -> None:
    limits = RateLimits(per_chat=(1, 1.0), per_group=(2, 60.0), per_bot=(4, 1.0), slack=0)
    with FakeTelegramApi(limits=limits) as fake:
        assert send(fake.url, chat_id=1, text="a").status_code == 200
        too_soon = send(fake.url, chat_id=1, text="b")
        assert too_soon.status_code == 429
        assert too_soon.headers["Retry-After"] == "1"
        assert too_soon.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        }
        # The bot: 4 a second, whatever the chats (chat 1 already had one).
        statuses = [send(fake.url, chat_id=10 + i, text="x").status_code for i in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert [r.chat for r in fake.throttled()] == ["1", "13"]
        assert fake.peak(1.0) == 4


def test_group_limit_retry_after_names_the_wait() -> None:
    limits = RateLimits(per_chat=(100, 1.0), per_group=(2, 60.0), per_bot=(100, 1.0), slack=0)
    with FakeTelegramApi(limits=limits) as fake:
        statuses = [send(fake.url, chat_id=-5, text="x").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        [throttled] = fake.throttled()
        assert 58 <= int(throttled.description.rsplit(" ", 1)[1]) <= 60
        assert send(fake.url, chat_id=6, text="private chats are not groups").status_code == 200


def test_without_limits_it_never_throttles(telegram_api: FakeTelegramApi) -> None:
    assert [send(telegram_api.url, chat_id=1, text="x").status_code for _ in range(40)] == [
        200
    ] * 40
    assert telegram_api.peak(1.0) == 40
