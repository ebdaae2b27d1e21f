"""The HTTP API (DESIGN §4) around a fake Intake: validation, body parsing, error shapes."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from notifierd.api.app import build_app
from notifierd.api.auth import PROTECTED, token_matches
from notifierd.api.validation import SendRequest
from notifierd.config import Channel
from notifierd.errors import StoreError

MAX_BODY = 1024 * 1024
MAX_DELAY = 30 * 86400
FORM = "application/x-www-form-urlencoded"
SEND = "/api/send/devnull"


class FakeIntake:
    """Records what the API accepted; `accept` returns 1, 2, 3, ..."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        self.unavailable = False
        self.channels = channels
        self.accepted: list[tuple[str, SendRequest]] = []

    async def accept(self, channel: Channel, request: SendRequest) -> int:
        self.accepted.append((channel.name, request))
        return len(self.accepted)

    async def job(self, job_id: int) -> dict[str, Any] | None:
        if 1 <= job_id <= len(self.accepted):
            name, request = self.accepted[job_id - 1]
            return {"id": job_id, "channel": name, "message": request.message}
        return None

    async def metrics_text(self) -> bytes:
        return b"# metrics\n"

    def health(self) -> dict[str, Any]:
        return {"status": "paused" if self.unavailable else "ok"}


class FailingIntake(FakeIntake):
    def __init__(self, channels: Mapping[str, Channel], error: Exception) -> None:
        super().__init__(channels)
        self.error = error

    async def accept(self, channel: Channel, request: SendRequest) -> int:
        raise self.error


ClientFactory = Callable[[FakeIntake], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(intake: FakeIntake) -> TestClient[web.Request, web.Application]:
        client = TestClient(TestServer(build_app(intake, MAX_BODY, MAX_DELAY)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def intake(null_channels: dict[str, Channel]) -> FakeIntake:
    return FakeIntake(null_channels)


@pytest.fixture
async def client(
    make_client: ClientFactory, intake: FakeIntake
) -> TestClient[web.Request, web.Application]:
    return await make_client(intake)


Client = TestClient[web.Request, web.Application]


async def post_form(
    client: Client, body: str | bytes, path: str | URL = SEND, content_type: str = FORM
) -> tuple[int, bytes]:
    async with client.post(path, data=body, headers={"Content-Type": content_type}) as response:
        return response.status, await response.read()


async def post_json(client: Client, document: Any, path: str = SEND) -> tuple[int, bytes]:
    body = json.dumps(document, ensure_ascii=False).encode()
    return await post_form(client, body, path, "application/json")


def error_of(body: bytes) -> dict[str, Any]:
    """The JSON error body; checks the shape every error shares."""
    document = json.loads(body)
    assert isinstance(document, dict)
    assert isinstance(document["code"], str) and document["code"]
    assert isinstance(document["description"], str) and document["description"]
    assert "Traceback" not in document["description"]
    return document


# -- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Привет, мир! Ёжик.",
        "line one\nline two\r\nline three",
        "Hello, world: 100% (ok) «цитата» — тире…",
    ],
    ids=["cyrillic", "multiline", "punctuation"],
)
async def test_text_is_accepted_byte_identical(
    client: Client, intake: FakeIntake, message: str
) -> None:
    status, body = await post_form(client, urlencode({"message": message}))
    assert status == 204
    assert body == b""
    assert intake.accepted == [("devnull", SendRequest(message=message, delay=0))]


async def test_204_has_empty_body_and_job_id_header(client: Client) -> None:
    for expected in ("1", "2"):
        async with client.post(SEND, data={"message": "hi"}) as response:
            assert response.status == 204
            assert await response.read() == b""
            assert response.headers["X-Job-Id"] == expected


@pytest.mark.parametrize(
    ("delay", "expected"),
    [("0", 0), ("", 0), (None, 0), ("5", 5), ("3599", 3599), ("-0", 0), ("007", 7)],
)
async def test_delay_accepted(
    client: Client, intake: FakeIntake, delay: str | None, expected: int
) -> None:
    fields = {"message": "hi"} if delay is None else {"message": "hi", "delay": delay}
    status, _ = await post_form(client, urlencode(fields))
    assert status == 204
    assert intake.accepted[-1][1] == SendRequest("hi", expected)


async def test_json_body_accepted(client: Client, intake: FakeIntake) -> None:
    status, _ = await post_json(client, {"message": "Привет", "delay": 10})
    assert status == 204
    assert intake.accepted == [("devnull", SendRequest("Привет", 10))]


async def test_json_delay_as_digit_string_accepted(client: Client, intake: FakeIntake) -> None:
    status, _ = await post_json(client, {"message": "hi", "delay": "10"})
    assert status == 204
    assert intake.accepted[-1][1].delay == 10


async def test_json_null_delay_means_now(client: Client, intake: FakeIntake) -> None:
    status, _ = await post_json(client, {"message": "hi", "delay": None})
    assert status == 204
    assert intake.accepted[-1][1].delay == 0


async def test_multipart_fields_accepted(client: Client, intake: FakeIntake) -> None:
    form = FormData(default_to_multipart=True)
    form.add_field("message", "Привет\nмир")
    form.add_field("delay", "3")
    async with client.post(SEND, data=form) as response:
        assert response.request_info.headers["Content-Type"].startswith("multipart/form-data")
        assert response.status == 204, await response.text()
    assert intake.accepted == [("devnull", SendRequest("Привет\nмир", 3))]


async def test_query_only_with_empty_body_accepted(client: Client, intake: FakeIntake) -> None:
    async with client.post(SEND, params={"message": "Привет", "delay": "2"}) as response:
        assert response.status == 204
    assert intake.accepted == [("devnull", SendRequest("Привет", 2))]


async def test_body_wins_over_query(client: Client, intake: FakeIntake) -> None:
    status, _ = await post_form(
        client, "message=from-body", URL(SEND).with_query(message="from-query")
    )
    assert status == 204
    assert intake.accepted[-1][1].message == "from-body"


async def test_delay_only_in_query_is_taken_from_query(client: Client, intake: FakeIntake) -> None:
    status, _ = await post_form(client, "message=hi", URL(SEND).with_query(delay="7"))
    assert status == 204
    assert intake.accepted[-1][1] == SendRequest("hi", 7)


async def test_json_body_wins_over_query(client: Client, intake: FakeIntake) -> None:
    body = json.dumps({"message": "body"}).encode()
    async with client.post(
        URL(SEND).with_query(message="query", delay="4"),
        data=body,
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 204
    assert intake.accepted[-1][1] == SendRequest("body", 4)


async def test_empty_message_in_body_does_not_fall_back_to_query(
    client: Client, intake: FakeIntake
) -> None:
    status, body = await post_form(client, "message=", URL(SEND).with_query(message="query"))
    assert status == 422
    error = error_of(body)
    assert (error["code"], error["field"]) == ("required", "message")
    assert intake.accepted == []


async def test_channel_pattern_override(client: Client, intake: FakeIntake) -> None:
    path = "/api/send/lower"
    assert (await post_form(client, "message=abc", path))[0] == 204
    status, body = await post_form(client, "message=Abc", path)
    assert status == 422
    assert error_of(body)["code"] == "message_rejected"
    assert intake.accepted == [("lower", SendRequest("abc", 0))]


@pytest.mark.parametrize(
    "content_type",
    [
        f"{FORM}; charset=UTF-8",
        f"{FORM}; charset=utf-8",
        f"{FORM};charset=utf-8",
        FORM,  # these four are read without parsing the header: the rest are parsed
        f"{FORM}; charset=utf8",
        f"{FORM}; charset=UTF_8",
        f'{FORM}; charset="utf-8"',
        "Application/X-WWW-Form-Urlencoded",
        f"{FORM} ; charset=utf-8",
    ],
)
async def test_utf8_forms_accepted_however_spelled(
    client: Client, intake: FakeIntake, content_type: str
) -> None:
    status, _ = await post_form(client, "message=%D0%AF&delay=3", content_type=content_type)
    assert status == 204
    assert intake.accepted[-1][1] == SendRequest("Я", 3)


@pytest.mark.parametrize("content_type", [FORM, f"{FORM}; charset=latin-1"])
async def test_a_form_that_is_not_utf8_is_refused_whatever_the_header(
    client: Client, intake: FakeIntake, content_type: str
) -> None:
    status, answer = await post_form(client, b"message=%D0%AF&x=\xff", content_type=content_type)
    assert status in (415, 422)
    assert error_of(answer)["code"] in ("invalid_encoding", "unsupported_charset")
    assert intake.accepted == []


# -- 422 validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["message=", "message=+++", "message=%20%0A%09", "delay=5", "", "other=1"],
    ids=["empty", "spaces", "whitespace", "missing", "no-body", "other-field"],
)
async def test_message_required(client: Client, intake: FakeIntake, body: str) -> None:
    status, answer = await post_form(client, body)
    assert status == 422
    error = error_of(answer)
    assert (error["code"], error["field"]) == ("required", "message")
    assert intake.accepted == []


@pytest.mark.parametrize(
    ("delay", "code"),
    [
        ("-1", "out_of_range"),
        ("1.5", "invalid_number"),
        ("abc", "invalid_number"),
        (" 5", "invalid_number"),
        ("5 ", "invalid_number"),
        ("5\n", "invalid_number"),
        ("--5", "invalid_number"),
        ("-", "invalid_number"),
        ("+5", "invalid_number"),
        ("٣", "invalid_number"),  # an Arabic-Indic digit is not an ASCII digit
        ("99999999999999999999999", "out_of_range"),
        ("9" * 5000, "out_of_range"),
        ("-" + "9" * 5000, "out_of_range"),
        (str(MAX_DELAY + 1), "out_of_range"),
        ("3600", "out_of_range"),  # = the channel's ttl
        ("3601", "out_of_range"),
    ],
)
async def test_delay_rejected(client: Client, intake: FakeIntake, delay: str, code: str) -> None:
    status, answer = await post_form(client, urlencode({"message": "hi", "delay": delay}))
    assert status == 422
    error = error_of(answer)
    assert (error["code"], error["field"]) == (code, "delay")
    assert intake.accepted == []


async def test_delay_at_ttl_names_the_ttl(client: Client) -> None:
    status, answer = await post_form(client, "message=hi&delay=3600")
    assert status == 422
    assert "3600" in error_of(answer)["description"]


@pytest.mark.parametrize(
    ("document", "code", "field"),
    [
        ({"message": "hi", "delay": 1.5}, "invalid_number", "delay"),
        ({"message": "hi", "delay": True}, "invalid_number", "delay"),
        ({"message": "hi", "delay": [1]}, "invalid_number", "delay"),
        ({"message": "hi", "delay": -1}, "out_of_range", "delay"),
        ({"message": "hi", "delay": 99999999999999999999999}, "out_of_range", "delay"),
        ({"message": 5}, "invalid_type", "message"),
        ({"message": True}, "invalid_type", "message"),
        ({"message": ["hi"]}, "invalid_type", "message"),
        ({"message": None}, "required", "message"),
        ({"message": ""}, "required", "message"),
        ({}, "required", "message"),
    ],
)
async def test_json_types(
    client: Client, intake: FakeIntake, document: dict[str, Any], code: str, field: str
) -> None:
    status, answer = await post_json(client, document)
    assert status == 422
    error = error_of(answer)
    assert (error["code"], error["field"]) == (code, field)
    assert intake.accepted == []


async def test_json_integer_with_5000_digits_is_a_422(client: Client) -> None:
    body = b'{"message": "hi", "delay": ' + b"9" * 5000 + b"}"
    status, answer = await post_form(client, body, content_type="application/json")
    assert status == 422
    assert error_of(answer)["code"] in ("out_of_range", "invalid_json")


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'"message"', b"42", b"null", b"{", b'{"message": "hi",}', b"\xef\xbb"]
)
async def test_invalid_json(client: Client, body: bytes) -> None:
    status, answer = await post_form(client, body, content_type="application/json")
    assert status == 422
    assert error_of(answer)["code"] in ("invalid_json", "invalid_encoding")


@pytest.mark.parametrize("body", [b"[1, 2]", b"{", b"not json"])
async def test_invalid_json_code(client: Client, body: bytes) -> None:
    status, answer = await post_form(client, body, content_type="application/json")
    assert status == 422
    assert error_of(answer)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "path", "field"),
    [
        ("message=a&message=b", SEND, "message"),
        ("message=a&delay=1&delay=2", SEND, "delay"),
        ("", URL(SEND).with_query([("message", "a"), ("message", "b")]), "message"),
    ],
    ids=["body-message", "body-delay", "query-message"],
)
async def test_duplicate_field(client: Client, body: str, path: str | URL, field: str) -> None:
    status, answer = await post_form(client, body, path)
    assert status == 422
    error = error_of(answer)
    assert (error["code"], error["field"]) == ("duplicate_field", field)


async def test_duplicate_field_in_multipart(client: Client) -> None:
    form = FormData(default_to_multipart=True)
    form.add_field("message", "a")
    form.add_field("message", "b")
    async with client.post(SEND, data=form) as response:
        assert response.status == 422
        error = error_of(await response.read())
    assert (error["code"], error["field"]) == ("duplicate_field", "message")


async def test_duplicate_field_in_json(client: Client, intake: FakeIntake) -> None:
    body = b'{"message": "a", "message": "b"}'
    status, answer = await post_form(client, body, content_type="application/json")
    assert status == 422
    assert error_of(answer)["code"] == "duplicate_field"


def multipart_body(boundary: str, name: str, payload: bytes) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.mark.parametrize(
    ("body", "content_type", "path"),
    [
        (b"message=\xff\xfe", FORM, SEND),
        (b"message=%FF", FORM, SEND),
        (b"message=%D0", FORM, SEND),
        (b'{"message": "\xff"}', "application/json", SEND),
        (multipart_body("xyz", "message", b"\xff\xfe"), "multipart/form-data; boundary=xyz", SEND),
        (b"", FORM, URL(SEND + "?message=%FF", encoded=True)),
        (b"", FORM, URL(SEND + "?message=ok&delay=%C3", encoded=True)),
    ],
    ids=["form-raw", "form-percent", "form-truncated", "json", "multipart", "query", "query2"],
)
async def test_invalid_utf8(
    client: Client, intake: FakeIntake, body: bytes, content_type: str, path: str | URL
) -> None:
    status, answer = await post_form(client, body, path, content_type)
    assert status == 422
    assert error_of(answer)["code"] == "invalid_encoding"
    assert intake.accepted == []


async def test_any_unicode_text_is_accepted(client: Client, intake: FakeIntake) -> None:
    messages = [
        "hello 😀",
        "你好",
        "🔥 disk full ✅ → ≥ 90% 250µs Ωμέγα 磁盘已满",
        "tab\tand\r\nnew line",
    ]
    for message in messages:
        status, _ = await post_form(client, urlencode({"message": message}))
        assert status == 204, message
    assert [request.message for _, request in intake.accepted] == messages


async def test_control_character_is_refused_naming_it(client: Client, intake: FakeIntake) -> None:
    status, answer = await post_form(client, urlencode({"message": "tab\tand\u0000nul"}))
    assert status == 422
    error = error_of(answer)
    assert (error["code"], error["field"]) == ("message_rejected", "message")
    assert "U+0000 at position 8" in error["description"]
    assert intake.accepted == []


async def test_message_longer_than_worker_limit(client: Client, intake: FakeIntake) -> None:
    assert (await post_form(client, "message=" + "a" * 4096))[0] == 204
    status, answer = await post_form(client, "message=" + "a" * 4097)
    assert status == 422
    error = error_of(answer)
    assert (error["code"], error["field"]) == ("message_rejected", "message")
    assert "4097" in error["description"]
    assert "4096" in error["description"]


async def test_bad_channel_name_in_url(client: Client) -> None:
    status, answer = await post_form(client, "message=hi", URL("/api/send/a%0Ab", encoded=True))
    assert status == 422
    assert error_of(answer)["field"] == "channel"


# -- other statuses -----------------------------------------------------------------------------


async def test_unknown_channel(client: Client) -> None:
    status, answer = await post_form(client, "message=hi", "/api/send/nope")
    assert status == 404
    error = error_of(answer)
    assert error["code"] == "unknown_channel"
    assert "nope" in error["description"]


async def test_body_too_large_with_content_length(client: Client, intake: FakeIntake) -> None:
    body = io.BytesIO(b"message=" + b"a" * (2 * MAX_BODY))
    async with client.post(SEND, data=body, headers={"Content-Type": FORM}) as response:
        assert int(response.request_info.headers["Content-Length"]) > 2 * MAX_BODY
        assert response.status == 413
        assert error_of(await response.read())["code"] == "body_too_large"
    assert intake.accepted == []


async def test_body_too_large_chunked(client: Client, intake: FakeIntake) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"message="
        for _ in range(32):
            yield b"a" * 65536

    async with client.post(SEND, data=chunks(), headers={"Content-Type": FORM}) as response:
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert response.status == 413
        assert error_of(await response.read())["code"] == "body_too_large"
    assert intake.accepted == []


async def test_multipart_too_large_chunked(client: Client, intake: FakeIntake) -> None:
    payload = multipart_body("xyz", "message", b"a" * (2 * MAX_BODY))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    async with client.post(
        SEND, data=chunks(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    ) as response:
        assert response.status == 413
        assert error_of(await response.read())["code"] == "body_too_large"
    assert intake.accepted == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        f"{FORM}; charset=latin-1",
        f"{FORM}; charset=windows-1251",
        "application/json; charset=utf-16",
    ],
)
async def test_unsupported_content_type(
    client: Client, intake: FakeIntake, content_type: str
) -> None:
    status, answer = await post_form(client, "message=hi", content_type=content_type)
    assert status == 415
    assert error_of(answer)["code"] in ("unsupported_media_type", "unsupported_charset")
    assert intake.accepted == []


async def test_body_without_content_type(client: Client, intake: FakeIntake) -> None:
    # aiohttp's client adds a Content-Type for bytes unless told to skip it.
    async with client.post(
        SEND, data=b"message=hi", skip_auto_headers=["Content-Type"]
    ) as response:
        assert "Content-Type" not in response.request_info.headers
        assert response.status == 415
        assert error_of(await response.read())["code"] == "unsupported_media_type"
    assert intake.accepted == []


async def test_store_error_is_500_storage_error(
    make_client: ClientFactory, null_channels: dict[str, Channel]
) -> None:
    client = await make_client(FailingIntake(null_channels, StoreError("disk full")))
    status, answer = await post_form(client, "message=hi")
    assert status == 500
    error = error_of(answer)
    assert error["code"] == "storage_error"
    assert "disk full" not in error["description"]


async def test_unexpected_exception_is_500_without_traceback(
    make_client: ClientFactory, null_channels: dict[str, Channel]
) -> None:
    client = await make_client(FailingIntake(null_channels, RuntimeError("secret-token-123")))
    status, answer = await post_form(client, "message=hi")
    assert status == 500
    assert error_of(answer)["code"] == "internal_error"
    assert b"secret-token-123" not in answer
    assert b"Traceback" not in answer
    assert b"RuntimeError" not in answer


async def test_ping(client: Client) -> None:
    async with client.get("/api/ping") as response:
        assert response.status == 204
        assert await response.read() == b""


async def test_unavailable_send_and_ping_are_empty_503(client: Client, intake: FakeIntake) -> None:
    intake.unavailable = True
    async with client.get("/api/ping") as response:
        assert response.status == 503
        assert await response.read() == b""
    status, answer = await post_form(client, "message=hi")
    assert (status, answer) == (503, b"")
    # Unavailable wins over every other check, even an unknown channel or a bad body.
    status, answer = await post_form(client, b"\xff", "/api/send/nope", "text/plain")
    assert (status, answer) == (503, b"")
    assert intake.accepted == []


async def test_unknown_route_is_json_404(client: Client) -> None:
    async with client.get("/nope") as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        error_of(await response.read())


async def test_wrong_method_is_json_405(client: Client) -> None:
    async with client.get(SEND) as response:
        assert response.status == 405
        assert response.content_type == "application/json"
        error_of(await response.read())
    async with client.post("/api/ping") as response:
        assert response.status == 405
        error_of(await response.read())


async def test_405_has_allow_header(client: Client) -> None:
    async with client.get(SEND) as response:
        assert response.status == 405
        assert "POST" in response.headers.get("Allow", "")


# -- journal, metrics and tokens --------------------------------------------------------------


async def test_job_found_and_unknown(
    make_client: ClientFactory, null_channels: Mapping[str, Channel]
) -> None:
    client = await make_client(FakeIntake(null_channels))
    sent = await client.post("/api/send/devnull", data={"message": "hi"})
    job_id = sent.headers["X-Job-Id"]

    found = await client.get(f"/api/jobs/{job_id}")
    assert found.status == 200
    assert (await found.json())["message"] == "hi"
    for unknown in ("999", "abc", "1" * 40, "-1"):
        missing = await client.get(f"/api/jobs/{unknown}")
        assert missing.status == 404, unknown
        assert (await missing.json())["code"] == "unknown_job"


async def test_health_answers_200_even_when_unavailable(
    make_client: ClientFactory, null_channels: Mapping[str, Channel]
) -> None:
    intake = FakeIntake(null_channels)
    client = await make_client(intake)
    intake.unavailable = True
    response = await client.get("/api/health")
    assert response.status == 200
    assert await response.json() == {"status": "paused"}
    assert (await client.get("/api/ping")).status == 503


async def test_metrics_route(
    make_client: ClientFactory, null_channels: Mapping[str, Channel]
) -> None:
    client = await make_client(FakeIntake(null_channels))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert await response.read() == b"# metrics\n"


TOKEN = "s3cret-token-0123456789"


async def tokened_client(
    null_channels: Mapping[str, Channel], protected: frozenset[str] = PROTECTED
) -> TestClient[web.Request, web.Application]:
    app = build_app(FakeIntake(null_channels), MAX_BODY, MAX_DELAY, (TOKEN,), protected)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
)
async def test_send_without_a_valid_token_is_401(
    null_channels: Mapping[str, Channel], header: str | None
) -> None:
    client = await tokened_client(null_channels)
    try:
        headers = {} if header is None else {"Authorization": header}
        response = await client.post("/api/send/devnull", data={"message": "x"}, headers=headers)
        assert response.status == 401
        assert (await response.json())["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        jobs = await client.get("/api/jobs/1", headers=headers)
        assert jobs.status == 401
        # Ping and metrics are open unless asked otherwise.
        assert (await client.get("/api/ping")).status == 204
        assert (await client.get("/metrics")).status == 200
    finally:
        await client.close()


async def test_send_with_the_token_is_accepted(null_channels: Mapping[str, Channel]) -> None:
    client = await tokened_client(null_channels)
    try:
        response = await client.post(
            "/api/send/devnull",
            data={"message": "x"},
            headers={"Authorization": f"bearer  {TOKEN} "},
        )
        assert response.status == 204
    finally:
        await client.close()


async def test_ping_and_metrics_can_require_the_token(
    null_channels: Mapping[str, Channel],
) -> None:
    client = await tokened_client(null_channels, PROTECTED | {"ping", "metrics"})
    try:
        assert (await client.get("/api/ping")).status == 401
        assert (await client.get("/metrics")).status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/ping", headers=auth)).status == 204
        assert (await client.get("/metrics", headers=auth)).status == 200
    finally:
        await client.close()


def test_token_matches_checks_every_token() -> None:
    assert token_matches("b" * 20, ("a" * 20, "b" * 20))
    assert not token_matches("c" * 20, ("a" * 20, "b" * 20))
    assert not token_matches("", ("a" * 20,))
    assert token_matches("ключ-доступа-0123456", ("ключ-доступа-0123456",))


async def test_a_body_that_is_not_the_gzip_it_claims_is_a_400(client: Client) -> None:
    response = await client.post(
        SEND,
        data=b"message=plain",
        headers={"Content-Type": FORM, "Content-Encoding": "gzip"},
    )

    assert response.status == 400
    assert await response.json() == {
        "code": "invalid_body",
        "description": "the body cannot be read: Can not decode content-encoding: gzip",
    }


@pytest.mark.parametrize("depth", [33, 100_000])
async def test_json_nested_too_deep_is_a_400(client: Client, depth: int) -> None:
    body = b'{"message": "hi", "x": ' + b"[" * depth + b"]" * depth + b"}"

    response = await client.post(SEND, data=body, headers={"Content-Type": "application/json"})

    assert response.status == 400
    assert (await response.json())["code"] == "json_too_deep"


async def test_a_body_that_does_not_arrive_in_time_is_a_408(intake: FakeIntake) -> None:
    app = build_app(intake, MAX_BODY, MAX_DELAY, read_timeout=0.2)
    async with TestClient(TestServer(app)) as client:

        async def trickle() -> AsyncIterator[bytes]:
            yield b"message="
            await asyncio.sleep(5)
            yield b"late"

        response = await client.post(SEND, data=trickle(), headers={"Content-Type": FORM})

        assert response.status == 408
        assert (await response.json())["code"] == "request_timeout"
    assert intake.accepted == []


async def test_a_multipart_body_that_is_not_the_gzip_it_claims_is_a_400(client: Client) -> None:
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="message"\r\n\r\n'
        b"hi\r\n--b0undary--\r\n"
    )
    response = await client.post(
        SEND,
        data=body,
        headers={
            "Content-Type": "multipart/form-data; boundary=b0undary",
            "Content-Encoding": "gzip",
        },
    )

    assert response.status == 400
    assert (await response.json())["code"] == "invalid_body"


async def test_a_multipart_part_with_malformed_headers_is_a_422(
    client: Client, intake: FakeIntake
) -> None:
    # Found by the property-based run (tests/integration/test_openapi.py): it was a 500.
    body = b'--xyz\r\nContent-Disposition: form-data; name="\xf1\x1e{"\r\n\r\nm\r\n--xyz--\r\n'
    status, answer = await post_form(client, body, SEND, "multipart/form-data; boundary=xyz")
    assert status == 422
    assert error_of(answer) == {
        "code": "invalid_body",
        "description": "the multipart body cannot be read: a part has malformed headers",
    }
    assert intake.accepted == []
