"""The `webhook` worker on its own against the fake endpoint: its params and their errors, the
body templates and their escaping, how each answer is classified, TLS, secrets, rate keys."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.redaction import Redactor
from notifierd.workers.webhook import WebhookParams, WebhookWorker
from tests.fakes.server import Raw, Reset, Slow, free_port
from tests.fakes.tls import Certificate, self_signed_certificate
from tests.fakes.webhook import FakeWebhook
from tests.workers.helpers import delivery

TEXT = 'Диск «db-1» заполнен — "98 %"\nвторая строка\\ 🔥👩‍💻\t<b>&'
OpenWorker = Callable[..., WebhookWorker]


@pytest.fixture
def fake() -> Iterator[FakeWebhook]:
    server = FakeWebhook()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker(open_worker: Callable[..., Any], fake: FakeWebhook) -> OpenWorker:
    """`worker(**params)`: an opened worker for the fake (url: its /hook unless given)."""

    def make(**params: Any) -> WebhookWorker:
        settings = {"url": f"{fake.base_url}/hook", "timeout": 2, **params}
        made: WebhookWorker = open_worker(WebhookWorker, settings)
        return made

    return make


# --- params -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"url": "ftp://x.example/"}, "url must be an http:// or https:// URL"),
        ({"url": "https://{message}.example/"}, "placeholders in its path and query only"),
        ({"method": "GET"}, "the url must use the message"),
        ({"method": "get", "body": "{message}"}, "a GET request has no body"),
        ({"body": '{"text": {message}}'}, 'put it in quotes ("{message}")'),
        ({"body": '{"text": "{{ mesage }}"}'}, "unknown names ['mesage']"),
        ({"body": '{"text": "{{ message }"}'}, "template error at line 1"),
        ({"body": "static"}, "the url or the body must use the message"),
        ({"method": "TRACE"}, "Input should be 'POST', 'PUT', 'PATCH', 'GET' or 'DELETE'"),
        ({"token": "t", "username": "u", "password": "p"}, "not token and username and"),
        ({"username": "u"}, "username and password go together"),
        ({"url": "https://u:p@x.example/", "token": "t"}, "not token and credentials in the url"),
        ({"headers": {"Authorization": "Bearer x"}, "token": "t"}, "an Authorization header"),
        ({"headers": {"X-A": "a\nb"}}, "a value cannot hold a line break"),
        ({"headers": {"Bad Name": "x"}}, "not a valid HTTP header name"),
        ({"headers": {"Content-Length": "3"}}, "set by the worker itself"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "header 'x-a' is listed twice"),
        ({"success_value": False}, "success_value needs success_field"),
        ({"success_status": [700]}, "700 is not an HTTP status"),
        ({"recipients": ["ops", "ops"]}, "recipient 'ops' is listed twice"),
        ({"ca_file": "/nonexistent/ca.pem"}, "Path does not point to a file"),
        ({"client_key": __file__}, "client_key needs client_cert"),
        ({"ca_file": __file__, "tls_verify": False}, "ca_file is not used with tls_verify"),
        ({"timeout": 0}, "greater than 0"),
    ],
)
def test_bad_params_are_refused_with_a_reason(params: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookParams.model_validate({"url": "https://hooks.example.org/notify", **params})
    assert error in str(caught.value)


def test_jinja2_globals_are_not_taken_for_unknown_names() -> None:
    body = "{% for n in range(2) %}{{ message }}{% endfor %}"
    WebhookParams(url="https://x.example/", body=body, content_type="text")


# --- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"text": "{message}", "to": "{recipient}"}', id="placeholders"),
        pytest.param('{"text": "{{ message }}", "to": "{{ recipient }}"}', id="jinja2"),
        pytest.param('{"text": {{ message | tojson }}, "to": "{{ recipient }}"}', id="tojson"),
    ],
)
def test_a_json_body_carries_any_text_escaped(
    worker: OpenWorker, fake: FakeWebhook, body: str
) -> None:
    worker(body=body).send(delivery("дежурный", TEXT))

    [request] = fake.accepted
    assert request.content_type == "application/json"
    assert request.json() == {"text": TEXT, "to": "дежурный"}
    assert "Диск" in request.text  # UTF-8 as it is, not \u escapes


def test_the_default_json_body_is_channel_recipient_and_message(
    worker: OpenWorker, fake: FakeWebhook
) -> None:
    worker().send(delivery("ops", TEXT, channel="hooks"))

    assert fake.payloads == [{"channel": "hooks", "recipient": "ops", "message": TEXT}]
    assert fake.requests[0].method == "POST"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("text={message}&n={attempt}&id={delivery_id}", id="placeholders"),
        pytest.param("text={{ message }}&n={{ attempt }}&id={{ delivery_id }}", id="jinja2"),
    ],
)
def test_a_form_body_is_url_encoded(worker: OpenWorker, fake: FakeWebhook, body: str) -> None:
    worker(body=body, content_type="form").send(delivery("", TEXT + "&x=1", attempt=3))

    [request] = fake.accepted
    assert request.content_type == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.text)) == {"text": TEXT + "&x=1", "n": "3", "id": "1"}


def test_a_text_body_is_the_message_itself(worker: OpenWorker, fake: FakeWebhook) -> None:
    worker(content_type="text", method="put").send(delivery("", TEXT))

    [request] = fake.accepted
    assert (request.method, request.text) == ("PUT", TEXT)
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_get_carries_the_message_in_its_url(worker: OpenWorker, fake: FakeWebhook) -> None:
    worker(url=f"{fake.base_url}/send?to={{recipient}}&text={{message}}", method="GET").send(
        delivery("ops/1", TEXT)
    )

    [request] = fake.accepted
    assert (request.method, request.body) == ("GET", b"")
    assert request.query == {"to": "ops/1", "text": TEXT}


def test_headers_are_sent_and_a_content_type_header_wins(
    worker: OpenWorker, fake: FakeWebhook
) -> None:
    headers = {"X-Source": "notifierd", "Content-Type": "application/vnd.alert+json"}
    worker(headers=headers).send(delivery("", "hi"))

    [request] = fake.accepted
    assert request.headers["X-Source"] == "notifierd"
    assert request.headers["Content-Type"] == "application/vnd.alert+json"


@pytest.mark.parametrize(
    ("auth", "params"),
    [
        ({"token": "tok-123"}, {"token": "tok-123"}),
        ({"login": ("опс", "пароль")}, {"username": "опс", "password": "пароль"}),
    ],
)
def test_bearer_and_basic_authentication(auth: dict[str, Any], params: dict[str, Any]) -> None:
    with FakeWebhook(**auth) as base_url:
        wrong = WebhookWorker("hooks", WebhookParams(url=f"{base_url}/h", token="nope"))
        right = WebhookWorker("hooks", WebhookParams(url=f"{base_url}/h", **params))
        for worker in (wrong, right):
            worker.open()
        try:
            with pytest.raises(ChannelMisconfigured, match="HTTP 401"):
                wrong.send(delivery("", "hi"))
            right.send(delivery("", "hi"))
        finally:
            wrong.close()
            right.close()


def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    fake = FakeWebhook(login=("ops", "s3cret-pass"))
    with fake as base_url:
        url = base_url.replace("http://", "http://ops:s3cret-pass@") + "/h"
        worker = WebhookWorker("hooks", WebhookParams(url=url))
        worker.open()
        try:
            worker.send(delivery("", "hi"))
        finally:
            worker.close()
    assert len(fake.accepted) == 1


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected", "text"),
    [
        (Raw(500, "oops"), TemporaryFailure, "webhook: HTTP 500: oops"),
        (Raw(503, "busy"), TemporaryFailure, "webhook: HTTP 503: busy"),
        (Raw(408, ""), TemporaryFailure, "webhook: HTTP 408: no answer text"),
        (Raw(400, '{"error": "bad"}'), PermanentFailure, 'webhook: HTTP 400: {"error": "bad"}'),
        (Raw(422, "no"), PermanentFailure, "webhook: HTTP 422: no"),
        (Raw(401, "who?"), ChannelMisconfigured, "webhook: HTTP 401: who?: check params.url"),
        (Raw(403, "no"), ChannelMisconfigured, "webhook: HTTP 403: no"),
        (Raw(404, "gone"), ChannelMisconfigured, "webhook: HTTP 404: gone"),
        (Raw(407, "proxy"), ChannelMisconfigured, "webhook: HTTP 407: proxy"),
        (Raw(302, "", headers={"Location": "/x"}), ChannelMisconfigured, "webhook: HTTP 302"),
        (Raw(202, "later"), None, ""),
        (Reset(), TemporaryFailure, "webhook: request failed: ConnectionError"),
        (Slow(3), TemporaryFailure, "webhook: request timed out"),
    ],
)
def test_each_answer_is_classified(
    worker: OpenWorker,
    fake: FakeWebhook,
    reply: object,
    expected: type[DeliveryError] | None,
    text: str,
) -> None:
    fake.script(reply)
    sender = worker(timeout=0.5)
    if expected is None:
        sender.send(delivery("", "hi"))
        return
    with pytest.raises(DeliveryError) as caught:
        sender.send(delivery("", "hi"))
    assert type(caught.value) is expected
    assert caught.value.message.startswith(text)


@pytest.mark.parametrize(("header", "wait"), [("7", 7.0), (None, None)])
def test_a_429_is_a_rate_limit_after_its_retry_after(
    worker: OpenWorker, fake: FakeWebhook, header: str | None, wait: float | None
) -> None:
    fake.script(Raw(429, "slow down", headers={"Retry-After": header} if header else {}))

    with pytest.raises(RateLimited) as caught:
        worker().send(delivery("", "hi"))
    assert caught.value.retry_after == wait
    assert caught.value.message == "webhook: HTTP 429: slow down"


def test_a_refused_connection_is_temporary(open_worker: Callable[..., Any]) -> None:
    worker = open_worker(WebhookWorker, {"url": f"http://127.0.0.1:{free_port()}/x"})
    with pytest.raises(TemporaryFailure, match="ConnectionError"):
        worker.send(delivery("", "hi"))


@pytest.mark.parametrize(
    ("statuses", "status", "delivered"),
    [([200, 202], 202, True), ([200], 202, False), ([200, 302], 302, True), ([], 204, True)],
)
def test_success_is_the_status_set(
    worker: OpenWorker, fake: FakeWebhook, statuses: list[int], status: int, delivered: bool
) -> None:
    fake.script(Raw(status, "answer", headers={"Location": "/x"} if status == 302 else {}))
    sender = worker(success_status=statuses)
    if delivered:
        sender.send(delivery("", "hi"))
    else:
        with pytest.raises(PermanentFailure, match="HTTP 202 is not a success answer: answer"):
            sender.send(delivery("", "hi"))


@pytest.mark.parametrize(
    ("answer", "field", "value", "delivered"),
    [
        ({"ok": True}, "ok", None, True),
        ({"ok": False, "error": "invalid_auth"}, "ok", None, False),
        ({"ok": 1}, "ok", None, False),  # compared as JSON: 1 is not true
        ({"result": {"status": "queued"}}, "result.status", "queued", True),
        ({"result": {"status": "dropped"}}, "result.status", "queued", False),
        ({"result": "queued"}, "result.status", "queued", False),
        ("not json", "ok", None, False),
    ],
)
def test_success_may_also_need_a_field_of_the_json_answer(
    worker: OpenWorker,
    fake: FakeWebhook,
    answer: object,
    field: str,
    value: object,
    delivered: bool,
) -> None:
    body = answer if isinstance(answer, str) else json.dumps(answer)
    fake.script(Raw(200, body, "application/json"))
    check: dict[str, Any] = {"success_field": field}
    if value is not None:
        check["success_value"] = value
    sender = worker(**check)
    if delivered:
        sender.send(delivery("", "hi"))
        return
    with pytest.raises(PermanentFailure) as caught:
        sender.send(delivery("", "hi"))
    assert caught.value.message.startswith(f"webhook: HTTP 200 but {field} is not ")
    assert caught.value.message.endswith(body)


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("client"), "client")


def tls_fake(certificate: Certificate, client: Certificate | None = None) -> FakeWebhook:
    context = certificate.server_context()
    if client is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client.cert)
    return FakeWebhook(tls=context)


def send_once(url: str, **params: Any) -> None:
    worker = WebhookWorker("hooks", WebhookParams(url=url, timeout=2, **params))
    worker.open()
    try:
        worker.send(delivery("", "hi"))
    finally:
        worker.close()


def test_a_server_certificate_is_checked_against_ca_file(certificate: Certificate) -> None:
    with tls_fake(certificate) as base_url:
        with pytest.raises(ChannelMisconfigured) as caught:
            send_once(f"{base_url}/h")
        send_once(f"{base_url}/h", ca_file=certificate.cert)
    assert caught.value.message.startswith(
        "webhook: the TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: self-signed certificate: set params.ca_file of channel 'hooks'"
    )


def test_tls_verify_false_accepts_any_certificate_and_says_so(certificate: Certificate) -> None:
    with tls_fake(certificate) as base_url, capture_logs() as logs:
        send_once(f"{base_url}/h", tls_verify=False)
    assert [entry["event"] for entry in logs] == ["webhook.tls_unverified"]


def test_a_client_certificate_is_presented(
    certificate: Certificate, client_certificate: Certificate
) -> None:
    fake = tls_fake(certificate, client_certificate)
    with fake as base_url:
        with pytest.raises(TemporaryFailure):
            send_once(f"{base_url}/h", ca_file=certificate.cert)
        send_once(
            f"{base_url}/h",
            ca_file=certificate.cert,
            client_cert=client_certificate.cert,
            client_key=client_certificate.key,
        )
    assert len(fake.accepted) == 1


# --- secrets, rate keys, plain http -----------------------------------------------------------


def test_credentials_are_secrets_in_every_place_they_can_be() -> None:
    params = WebhookParams(
        url="https://ops:pw-0123@hooks.example.org/h/Q3rT5yU7iO9pA1sD3fG5?sig=abc&n=1",
        headers={"X-Api-Key": "key-456", "Authorization2": "Token tok-789", "X-Source": "nd"},
    )
    redactor = Redactor(WebhookWorker.secrets(params))

    shown = redactor.text(
        "pw-0123 ops:pw-0123 Q3rT5yU7iO9pA1sD3fG5 sig=abc key-456 tok-789 nd /notify n=1"
    )

    assert shown == "*** *** *** sig=*** *** *** nd /notify n=1"


def test_a_url_without_credentials_is_no_secret() -> None:
    params = WebhookParams(url="https://hooks.example.org/notify?format=json", token="t0k")
    assert WebhookWorker.secrets(params) == ["t0k"]


def test_channels_share_a_rate_key_by_host_and_credentials() -> None:
    def key(url: str, **params: Any) -> str | None:
        return WebhookWorker.rate_key(WebhookParams(url=url, **params))

    base = key("https://hooks.example.org/a", token="one")
    assert base == key("https://hooks.example.org/b?x=1", token="one")
    assert base != key("https://hooks.example.org/a", token="two")
    assert base != key("https://other.example.org/a", token="one")
    assert base != key("https://hooks.example.org:8443/a", token="one")
    assert "one" not in (base or "")


def test_plain_http_to_another_host_is_warned_about_at_start_up() -> None:
    params = WebhookParams(url="http://hooks.example.org/notify", token="t0k")
    worker = WebhookWorker("hooks", params)
    with capture_logs() as logs:
        worker.open()
    worker.close()
    [warning] = logs
    assert warning["event"] == "webhook.plain_http"
    assert "sends its messages and credentials over plain http" in warning["hint"]


def test_the_length_limit_is_the_channels() -> None:
    params = WebhookParams(url="https://x.example/", max_length=10)
    assert WebhookWorker.check_message(params, "0123456789") is None
    assert "11 characters long" in (WebhookWorker.check_message(params, "0123456789!") or "")
    assert WebhookWorker.length_limit(WebhookParams(url="https://x.example/")) is None
