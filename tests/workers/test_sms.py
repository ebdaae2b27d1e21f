"""The `sms` worker against fake Twilio, SMS.ru and generic gateways speaking their protocols."""

from __future__ import annotations

import base64
import pickle
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

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
from notifierd.workers.remote import parse_retry_after
from notifierd.workers.sms import SmsParams, SmsWorker
from notifierd.workers.sms.smsru import SmsRuStatus, parse_smsru_answer, smsru_failure
from notifierd.workers.sms.twilio import validity_period
from tests.fakes.server import Raw, Reset, Slow, free_port
from tests.fakes.sms_gateway import QUEUED, FakeSmsGateway, GatewayReply
from tests.fakes.smsru import DEFAULT_API_ID, FakeSmsRu
from tests.fakes.twilio import (
    DEFAULT_API_KEY,
    DEFAULT_SID,
    DEFAULT_TOKEN,
    FakeTwilio,
    rate_limited,
    server_error,
    twilio_error,
)
from tests.workers.helpers import delivery
from tests.workers.leaving import send_in_worker_process

PHONE = "+79251234567"
OTHER = "+74993221627"
CYRILLIC = "Сервер db-1 недоступен!\nПроверьте «ёлку» №5 — срочно."
OpenWorker = Callable[..., Any]


def twilio_params(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "twilio",
        "account_sid": DEFAULT_SID,
        "auth_token": DEFAULT_TOKEN,
        "sender": "+15005550006",
        "phones": [PHONE, OTHER],
        "base_url": base_url,
        "timeout": 2,
        **extra,
    }


def smsru_params(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "smsru",
        "api_id": DEFAULT_API_ID,
        "phones": [PHONE, OTHER],
        "base_url": base_url,
        "timeout": 2,
        **extra,
    }


def kannel_params(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "http",
        "method": "GET",
        "url": base_url + "/cgi-bin/sendsms?username={username}&password={password}"
        "&to={phone}&text={message}&coding=2&charset=utf-8",
        "username": "kannel",
        "password": "kannel-pass-9d2f",
        "success_regex": r"^[03]: ",
        "phones": [PHONE, OTHER],
        "timeout": 2,
        **extra,
    }


def errors_of(params: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        SmsParams.model_validate(params)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


# --- Parameters -------------------------------------------------------------------------------


def test_recipients_are_the_phones() -> None:
    params = SmsParams.model_validate(twilio_params("http://x"))
    assert SmsWorker.recipients(params) == [PHONE, OTHER]


@pytest.mark.parametrize(
    "bad",
    ["79251234567", "+7 925 123-45-67", "+0123456789", "+1234567", "+1234567890123456", ""],
)
def test_phones_must_be_e164_and_the_error_names_the_number(bad: str) -> None:
    [(loc, message)] = errors_of({**twilio_params("http://x"), "phones": [PHONE, bad]})
    assert loc == ("phones", 1)
    assert repr(bad) in message and "E.164" in message


@pytest.mark.parametrize("good", ["+12345678", "+123456789012345", "+447700900123"])
def test_e164_boundaries_accepted(good: str) -> None:
    SmsParams.model_validate({**twilio_params("http://x"), "phones": [good]})


def test_errors_carry_the_yaml_key_path_without_the_union_tag() -> None:
    params = twilio_params("http://x")
    del params["account_sid"]
    params["bogus"] = 1
    assert sorted(errors_of(params)) == [
        (("account_sid",), "Field required"),
        (("bogus",), "Extra inputs are not permitted"),
    ]


def test_unknown_provider_lists_the_known_ones() -> None:
    [(loc, message)] = errors_of({"provider": "nexmo", "phones": [PHONE]})
    assert loc == ("provider",)
    assert "'twilio', 'smsru', 'http'" in message
    [(loc, _)] = errors_of({"phones": [PHONE]})
    assert loc == ("provider",)


@pytest.mark.parametrize(
    ("change", "loc", "fragment"),
    [
        ({"sender": None}, (), "`sender` (the From number) or `messaging_service_sid`"),
        ({"phones": []}, ("phones",), "at least 1 item"),
        ({"phones": [PHONE, PHONE]}, ("phones",), "'+79251234567' is listed twice"),
        ({"base_url": "ftp://x"}, ("base_url",), "not an http:// or https:// URL"),
        ({"max_parts": 0}, ("max_parts",), "greater than or equal to 1"),
    ],
)
def test_twilio_parameter_errors(
    change: dict[str, Any], loc: tuple[Any, ...], fragment: str
) -> None:
    [(error_loc, message)] = errors_of({**twilio_params("http://x"), **change})
    assert error_loc == loc
    assert fragment in message


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"url": "http://gw/send?to={phone}"}, "must contain {message}"),
        ({"method": "GET", "body": "to={phone}"}, "a GET request has no body"),
        ({"success_regex": "("}, "not a valid regular expression"),
        ({"headers": {"X-Text": "{message}"}}, "only {username} and {password}"),
        ({"basic_auth": True, "password": None}, "basic_auth needs"),
        ({"url": "http://gw/?to={phone}&text={message}&from={sender}"}, "`sender` is not set"),
    ],
)
def test_http_gateway_parameter_errors(change: dict[str, Any], fragment: str) -> None:
    [(_, message)] = errors_of({**kannel_params("http://gw"), **change})
    assert fragment in message


def test_secrets_hidden_in_repr_and_params_survive_pickling() -> None:
    for raw in (
        twilio_params("http://x"),
        smsru_params("http://x"),
        kannel_params("http://x"),
    ):
        params = SmsParams.model_validate(raw)
        shown = repr(params)
        assert DEFAULT_TOKEN not in shown
        assert DEFAULT_API_ID not in shown
        assert "kannel-pass-9d2f" not in shown
        # Params travel to spawned worker processes.
        assert pickle.loads(pickle.dumps(params)) == params


def test_send_needs_open() -> None:
    worker = SmsWorker("alerts", SmsParams.model_validate(twilio_params("http://x")))
    with pytest.raises(RuntimeError, match=r"before open\(\)"):
        worker.send(delivery(PHONE, "hi"))
    worker.close()


# --- Twilio -----------------------------------------------------------------------------------


def test_twilio_delivers_cyrillic_intact(twilio: FakeTwilio, open_worker: OpenWorker) -> None:
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url))
    with capture_logs() as logs:
        worker.send(delivery(PHONE, CYRILLIC))
    [message] = twilio.messages
    assert (message.to, message.from_, message.body) == (PHONE, "+15005550006", CYRILLIC)
    [request] = twilio.requests
    assert request.content_type == "application/x-www-form-urlencoded"
    # The bytes on the wire: UTF-8, percent-encoded, with nothing lost.
    assert quote(CYRILLIC.encode()).encode() in request.body.replace(b"+", b"%20")
    assert [entry["event"] for entry in logs] == ["sms.delivered"]
    assert logs[0]["remote_id"] == message.sid


def test_twilio_messaging_service(twilio: FakeTwilio, open_worker: OpenWorker) -> None:
    params = twilio_params(twilio.base_url, sender=None, messaging_service_sid="MG123")
    open_worker(SmsWorker, params).send(delivery(PHONE, "hi"))
    assert twilio.messages[0].messaging_service_sid == "MG123"
    assert "From" not in twilio.requests[0].params


@pytest.mark.parametrize(
    ("reply", "expected", "fragment"),
    [
        (twilio_error(21211), PermanentFailure, "error 21211"),
        (twilio_error(21610), PermanentFailure, "error 21610"),
        (twilio_error(21614), PermanentFailure, "error 21614"),
        (twilio_error(21617), PermanentFailure, "error 21617"),
        (twilio_error(21408, message="Permission to send an SMS has not been enabled"),
         PermanentFailure, "error 21408"),
        (twilio_error(20404, status=404, message="Not Found"), PermanentFailure, "HTTP 404"),
        (twilio_error(20003, status=401), ChannelMisconfigured, "error 20003"),
        # A bad sender fails every message of the channel: the channel is misconfigured.
        (twilio_error(21212), ChannelMisconfigured, "error 21212"),
        (twilio_error(21606), ChannelMisconfigured, "error 21606"),
        (twilio_error(21659), ChannelMisconfigured, "error 21659"),
        # The sender's queue is full: it drains, so later is another answer.
        (twilio_error(21611), TemporaryFailure, "error 21611"),
        (server_error(500, 20500), TemporaryFailure, "HTTP 500"),
        (server_error(503, 20503, recorded=False), TemporaryFailure, "error 20503"),
        (Raw(502, "<html><body>Bad Gateway</body></html>"), TemporaryFailure, "Bad Gateway"),
        (Reset(), TemporaryFailure, "request failed"),
        (Slow(3), TemporaryFailure, "request timed out"),
    ],
)  # fmt: skip
def test_twilio_classification(
    twilio: FakeTwilio,
    open_worker: OpenWorker,
    reply: object,
    expected: type[DeliveryError],
    fragment: str,
) -> None:
    twilio.script(PHONE, reply)
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url, timeout=0.5))
    with pytest.raises(DeliveryError) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert type(caught.value) is expected
    assert fragment in str(caught.value)
    assert DEFAULT_TOKEN not in str(caught.value)


def test_twilio_queue_full_waits_the_channel_s_retry_delay(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    twilio.script(PHONE, twilio_error(21611))
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url))
    with pytest.raises(TemporaryFailure) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert caught.value.retry_after is None
    worker.send(delivery(PHONE, "hi", attempt=2))
    assert [m.body for m in twilio.messages] == ["hi"]


def key_params(base_url: str, **extra: Any) -> dict[str, Any]:
    params = twilio_params(base_url, api_key_sid=DEFAULT_API_KEY[0], **extra)
    del params["auth_token"]
    return params | {"api_key_secret": extra.get("api_key_secret", DEFAULT_API_KEY[1])}


def test_twilio_api_key_authenticates_with_the_account_in_the_url(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    worker = open_worker(SmsWorker, key_params(twilio.base_url))
    worker.send(delivery(PHONE, "🔥 disk full"))
    [request] = twilio.requests
    user, password = DEFAULT_API_KEY
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert f"/Accounts/{DEFAULT_SID}/Messages.json" in request.path
    assert [m.body for m in twilio.messages] == ["🔥 disk full"]


def test_twilio_wrong_api_key_secret_is_misconfigured_and_never_shown(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    params = key_params(twilio.base_url, api_key_secret="wrong-key-secret-77")
    worker = open_worker(SmsWorker, params)
    with capture_logs() as logs, pytest.raises(ChannelMisconfigured, match="20003") as caught:
        worker.send(delivery(PHONE, "hi"))
    assert "wrong-key-secret-77" not in str(caught.value) + str(logs)
    assert "wrong-key-secret-77" not in repr(SmsParams.model_validate(params))
    assert twilio.messages == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"auth_token": None}, "twilio needs an API key (`api_key_sid` and `api_key_secret`"),
        ({"api_key_sid": "SK1", "api_key_secret": "s"}, "or `auth_token`, not both"),
        ({"auth_token": None, "api_key_sid": "SK1"}, "`api_key_sid` needs `api_key_secret`"),
        ({"auth_token": None, "api_key_secret": "s"}, "`api_key_secret` needs `api_key_sid`"),
    ],
)
def test_twilio_takes_exactly_one_way_to_authenticate(
    change: dict[str, Any], fragment: str
) -> None:
    params = {**twilio_params("http://x"), **change}
    [(loc, message)] = errors_of({k: v for k, v in params.items() if v is not None})
    assert loc == ()
    assert fragment in message


@pytest.mark.parametrize(
    ("left", "expected"),
    [(600.0, 600), (599.2, 600), (0.2, 1), (-5.0, 1), (36000.0, 36000), (36000.5, None)],
)
def test_validity_period_is_what_is_left_of_the_ttl(left: float, expected: int | None) -> None:
    assert validity_period(1_000_000.0 + left, 1_000_000.0) == expected
    assert validity_period(float("inf"), 1_000_000.0) is None


def test_twilio_gets_the_ttl_left_as_validity_period(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url))
    now = time.time()
    worker.send(delivery(PHONE, "soon")._replace(expires_at=now + 300))
    worker.send(delivery(PHONE, "a day")._replace(expires_at=now + 86400))
    worker.send(delivery(PHONE, "forever"))
    short, day, forever = (r.params.get("ValidityPeriod") for r in twilio.requests)
    assert short is not None and 295 <= int(short) <= 300
    assert day is None and forever is None  # beyond Twilio's 10 hours: its default applies
    assert len(twilio.messages) == 3


def test_twilio_rate_limit_carries_retry_after(twilio: FakeTwilio, open_worker: OpenWorker) -> None:
    twilio.script(PHONE, rate_limited(retry_after=7), rate_limited())
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url))
    with pytest.raises(RateLimited) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert caught.value.retry_after == 7
    assert "20429" in str(caught.value)
    with pytest.raises(RateLimited) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert caught.value.retry_after is None
    worker.send(delivery(PHONE, "hi"))
    assert len(twilio.messages) == 1


def test_twilio_bad_token_is_a_misconfigured_channel(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url, auth_token="wrong-token-1"))
    with capture_logs() as logs, pytest.raises(ChannelMisconfigured, match="20003"):
        worker.send(delivery(PHONE, "hi"))
    assert "wrong-token-1" not in str(logs)
    assert twilio.messages == []


def test_twilio_500_after_recording_is_retried_and_may_duplicate(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    # Twilio documents that a 20500 may have sent the message; the at-least-once contract
    # accepts the duplicate rather than risk losing the message.
    twilio.script(PHONE, server_error())
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url))
    with pytest.raises(TemporaryFailure):
        worker.send(delivery(PHONE, "hi"))
    worker.send(delivery(PHONE, "hi", attempt=2))
    assert [m.body for m in twilio.messages] == ["hi", "hi"]


def test_one_failing_number_does_not_block_another(
    twilio: FakeTwilio, open_worker: OpenWorker
) -> None:
    twilio.script(PHONE, twilio_error(21610))
    worker = open_worker(SmsWorker, twilio_params(twilio.base_url))
    with pytest.raises(PermanentFailure):
        worker.send(delivery(PHONE, CYRILLIC))
    worker.send(delivery(OTHER, CYRILLIC))
    assert [(m.to, m.body) for m in twilio.messages] == [(OTHER, CYRILLIC)]


def test_connection_refused_is_temporary(open_worker: OpenWorker) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    for params in (twilio_params(base_url), smsru_params(base_url)):
        worker = open_worker(SmsWorker, params)
        with pytest.raises(TemporaryFailure, match="request failed: ConnectionError"):
            worker.send(delivery(PHONE, "hi"))


# --- SMS.ru -----------------------------------------------------------------------------------


def test_smsru_delivers_cyrillic_intact(smsru: FakeSmsRu, open_worker: OpenWorker) -> None:
    worker = open_worker(SmsWorker, smsru_params(smsru.base_url, sender="Notifier"))
    worker.send(delivery(PHONE, CYRILLIC))
    [message] = smsru.messages
    assert (message.number, message.text, message.sender) == ("79251234567", CYRILLIC, "Notifier")
    [request] = smsru.requests
    assert request.method == "POST"
    assert request.params["json"] == "1"
    # api_id travels in the body, never in the URL (which errors and proxies may show).
    assert "api_id" not in request.query
    assert quote(CYRILLIC.encode()).encode() in request.body.replace(b"+", b"%20")


def test_smsru_mixed_per_number_answer(smsru: FakeSmsRu) -> None:
    smsru.script(OTHER, 207)
    with requests.Session() as session:
        response = session.post(
            f"{smsru.base_url}/sms/send",
            data={
                "api_id": DEFAULT_API_ID,
                "to": "79251234567,74993221627",
                "msg": "hi",
                "json": 1,
            },
            timeout=5,
        )
    assert response.status_code == 200
    answer = parse_smsru_answer(response.json())
    assert answer.status.code == 100
    assert set(answer.numbers) == {"79251234567", "74993221627"}
    ok, refused = answer.numbers["79251234567"], answer.numbers["74993221627"]
    assert ok.code == 100 and ok.sms_id
    assert smsru_failure(ok, PHONE) is None
    assert refused.code == 207
    failure = smsru_failure(refused, OTHER)
    assert isinstance(failure, PermanentFailure)
    assert "status 207" in str(failure) and "маршрута" in str(failure)


def test_smsru_parser_reads_documented_answers() -> None:
    answer = parse_smsru_answer(
        {
            "status": "OK",
            "status_code": 100,
            "sms": {
                "79255070602": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"},
                "74993221627": {"status": "ERROR", "status_code": "207", "status_text": "Нет"},
            },
            "balance": 4122.56,
        }
    )
    assert answer.numbers == {
        "79255070602": SmsRuStatus(100, "", "000000-10000000"),
        "74993221627": SmsRuStatus(207, "Нет"),
    }
    top = parse_smsru_answer({"status": "ERROR", "status_code": 200, "status_text": "bad"})
    assert top.status == SmsRuStatus(200, "bad") and top.numbers == {}
    broken: object
    for broken in ([], {"status": "OK"}, {"status_code": 100, "sms": []}):
        with pytest.raises(ValueError):
            parse_smsru_answer(broken)


@pytest.mark.parametrize(
    ("code", "expected"),
    [(code, PermanentFailure) for code in (202, 203, 205, 207, 209, 299)]
    + [(code, TemporaryFailure) for code in (206, 220, 230, 231, 232, 233, 500)]
    # No money left, or a sender name not approved: the channel's problem, whatever the number.
    + [(code, ChannelMisconfigured) for code in (201, 204)],
)
def test_smsru_per_number_codes(
    smsru: FakeSmsRu, open_worker: OpenWorker, code: int, expected: type[DeliveryError]
) -> None:
    smsru.script(PHONE, code)
    worker = open_worker(SmsWorker, smsru_params(smsru.base_url))
    with pytest.raises(expected, match=re.escape(f"sms.ru: {PHONE}: status {code}")):
        worker.send(delivery(PHONE, "hi"))
    assert smsru.messages == []


@pytest.mark.parametrize(("code", "retry_after"), [(231, 60.0), (232, None), (230, None)])
def test_smsru_per_number_limits_wait_out_their_window(
    smsru: FakeSmsRu, open_worker: OpenWorker, code: int, retry_after: float | None
) -> None:
    smsru.script(PHONE, code)
    worker = open_worker(SmsWorker, smsru_params(smsru.base_url))
    with pytest.raises(TemporaryFailure) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert caught.value.retry_after == retry_after
    worker.send(delivery(PHONE, "hi", attempt=2))
    assert [m.text for m in smsru.messages] == ["hi"]


@pytest.mark.parametrize(
    ("reply", "expected", "fragment"),
    [(code, ChannelMisconfigured, f"request: status {code}") for code in (200, 201, 204, 300, 301)]
    + [
        (220, TemporaryFailure, "request: status 220"),
        (500, TemporaryFailure, "request: status 500"),
        (Raw(502, "<html><h1>502 Bad Gateway</h1></html>"), TemporaryFailure, "HTTP 502"),
        (Raw(200, "<html>maintenance</html>"), TemporaryFailure, "unreadable answer"),
        (Reset(), TemporaryFailure, "request failed"),
        (Slow(3), TemporaryFailure, "request timed out"),
    ],
)
def test_smsru_request_level_answers(
    smsru: FakeSmsRu,
    open_worker: OpenWorker,
    reply: object,
    expected: type[DeliveryError],
    fragment: str,
) -> None:
    smsru.script_request(reply)
    worker = open_worker(SmsWorker, smsru_params(smsru.base_url, timeout=0.5))
    with pytest.raises(DeliveryError) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert type(caught.value) is expected
    assert fragment in str(caught.value)
    assert DEFAULT_API_ID not in str(caught.value)


def test_smsru_wrong_api_id_is_misconfigured_and_never_shown(
    smsru: FakeSmsRu, open_worker: OpenWorker
) -> None:
    worker = open_worker(SmsWorker, smsru_params(smsru.base_url, api_id="WRONG-API-ID-0042"))
    with capture_logs() as logs, pytest.raises(ChannelMisconfigured) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert "status 200" in str(caught.value)
    assert "WRONG-API-ID-0042" not in str(caught.value) + str(logs)


# --- A generic (Kannel-style) gateway ---------------------------------------------------------


def test_kannel_get_delivers_cyrillic_intact(
    gateway: FakeSmsGateway, open_worker: OpenWorker
) -> None:
    worker = open_worker(SmsWorker, kannel_params(gateway.base_url))
    with capture_logs() as logs:
        worker.send(delivery(PHONE, CYRILLIC))
    [message] = gateway.messages
    assert (message.path, message.phone, message.text) == ("/cgi-bin/sendsms", PHONE, CYRILLIC)
    [request] = gateway.requests
    assert request.query["coding"] == "2"
    assert "kannel-pass-9d2f" not in str(logs)


def test_kannel_queued_is_success(gateway: FakeSmsGateway, open_worker: OpenWorker) -> None:
    gateway.script(PHONE, QUEUED)
    open_worker(SmsWorker, kannel_params(gateway.base_url)).send(delivery(PHONE, "hi"))
    assert len(gateway.messages) == 1


def test_json_body_template(gateway: FakeSmsGateway, open_worker: OpenWorker) -> None:
    text = 'Он сказал: "стоп"\nи ушёл \\ конец'
    params = kannel_params(
        gateway.base_url,
        method="POST",
        url=gateway.base_url + "/api/v1/messages",
        body='{"to": "{phone}", "text": "{message}", "meta": {"source": "notifierd"}}',
        body_format="json",
        basic_auth=True,
        headers={"X-Api-Key": "{password}"},
        success_regex=None,
    )
    open_worker(SmsWorker, params).send(delivery(PHONE, text))
    [request] = gateway.requests
    assert request.content_type == "application/json"
    assert request.json() == {"to": PHONE, "text": text, "meta": {"source": "notifierd"}}
    assert request.headers["X-Api-Key"] == "kannel-pass-9d2f"
    assert gateway.messages[0].text == text


def test_form_body_template(gateway: FakeSmsGateway, open_worker: OpenWorker) -> None:
    params = kannel_params(
        gateway.base_url,
        method="POST",
        url=gateway.base_url + "/send",
        body="username={username}&password={password}&to={phone}&text={message}",
        success_status=[202],
    )
    open_worker(SmsWorker, params).send(delivery(PHONE, "a+b & c=d, " + CYRILLIC))
    assert gateway.messages[0].text == "a+b & c=d, " + CYRILLIC


@pytest.mark.parametrize(
    ("reply", "change", "expected", "fragment"),
    [
        (GatewayReply(400, "Missing receiver number"), {}, PermanentFailure, "HTTP 400"),
        (GatewayReply(404, "Not found"), {}, PermanentFailure, "HTTP 404"),
        (GatewayReply(503, "Service unavailable"), {}, TemporaryFailure, "HTTP 503"),
        (GatewayReply(202, "Queued? who knows"), {}, PermanentFailure, "not a success answer"),
        (GatewayReply(202, "0: Accepted"), {"success_status": [200]}, PermanentFailure,
         "HTTP 202 is not a success answer"),
        (GatewayReply(302, "", {"Location": "/login"}), {}, ChannelMisconfigured, "HTTP 302"),
        (Reset(), {}, TemporaryFailure, "request failed"),
        (Slow(3), {"timeout": 0.5}, TemporaryFailure, "request timed out"),
    ],
)  # fmt: skip
def test_gateway_classification(
    gateway: FakeSmsGateway,
    open_worker: OpenWorker,
    reply: object,
    change: dict[str, Any],
    expected: type[DeliveryError],
    fragment: str,
) -> None:
    gateway.script(PHONE, reply, reply)
    worker = open_worker(SmsWorker, kannel_params(gateway.base_url, **change))
    with pytest.raises(DeliveryError) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert type(caught.value) is expected
    assert fragment in str(caught.value)
    # The password is in the URL: requests quotes URLs in its exceptions; the worker process
    # does not pass it on.
    left = send_in_worker_process(worker, delivery(PHONE, "hi"))
    assert left.error is not None and fragment in left.error
    assert "kannel-pass-9d2f" not in "".join(left.texts())


def test_gateway_rate_limit(gateway: FakeSmsGateway, open_worker: OpenWorker) -> None:
    gateway.script(PHONE, GatewayReply(429, "slow down", {"Retry-After": "12"}))
    worker = open_worker(SmsWorker, kannel_params(gateway.base_url))
    with pytest.raises(RateLimited) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert caught.value.retry_after == 12


def test_gateway_auth_failure_is_misconfigured(
    gateway: FakeSmsGateway, open_worker: OpenWorker
) -> None:
    worker = open_worker(SmsWorker, kannel_params(gateway.base_url, password="nope-secret-77"))
    with capture_logs() as logs, pytest.raises(ChannelMisconfigured) as caught:
        worker.send(delivery(PHONE, "hi"))
    assert "Authorization failed" in str(caught.value)
    assert "nope-secret-77" not in str(caught.value) + str(logs)


def test_connection_errors_never_quote_the_secret_url(open_worker: OpenWorker) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    worker = open_worker(SmsWorker, kannel_params(base_url, password="p@ss/w0rd secret"))
    with pytest.raises(TemporaryFailure):
        worker.send(delivery(PHONE, "hi"))
    text = "".join(send_in_worker_process(worker, delivery(PHONE, "hi")).texts())
    assert "***" in text  # the URL was quoted by requests, and redacted
    assert "p@ss" not in text and "w0rd" not in text


@pytest.mark.parametrize(
    "remote",
    ["twilio echo", "smsru status echo", "smsru 500", "smsru unreadable", "gateway 400"],
)
def test_an_answer_quoting_a_secret_leaves_the_worker_process_redacted(
    twilio: FakeTwilio,
    smsru: FakeSmsRu,
    gateway: FakeSmsGateway,
    open_worker: OpenWorker,
    remote: str,
) -> None:
    """Each answer a provider's code reads (an error body, a status text, an HTML page, an
    unreadable answer) may quote a credential: none of it reaches the parent."""
    if remote == "twilio echo":
        twilio.echo_credentials = True
        twilio.script(PHONE, twilio_error(21614))
        params, secret = twilio_params(twilio.base_url), DEFAULT_TOKEN
    elif remote.startswith("smsru"):
        smsru.echo_credentials = True
        if remote == "smsru status echo":
            smsru.script(PHONE, 207)
        else:
            body = f"<html>error for api_id={DEFAULT_API_ID}</html>"
            smsru.script_request(Raw(500 if remote == "smsru 500" else 200, body))
        params, secret = smsru_params(smsru.base_url), DEFAULT_API_ID
    else:
        gateway.script(PHONE, GatewayReply(400, "Bad login kannel-pass-9d2f"))
        params, secret = kannel_params(gateway.base_url), "kannel-pass-9d2f"

    left = send_in_worker_process(open_worker(SmsWorker, params), delivery(PHONE, "hi"))

    assert left.error is not None and "***" in left.error
    assert secret not in "".join(left.texts())


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = 1445412450.0  # Wed, 21 Oct 2015 07:27:30 GMT
    assert parse_retry_after(header, now=now) == expected
