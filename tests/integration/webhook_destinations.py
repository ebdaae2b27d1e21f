"""The generic `webhook` worker as destinations of `test_destinations_e2e`: a JSON body from a
Jinja2 template with a bearer token, a key header and a success field; and a form body from
`{message}` placeholders with HTTP Basic and a key in the URL's query."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.server import Raw, Reset
from tests.fakes.webhook import FakeWebhook
from tests.integration.destinations import (
    BadSecret,
    Destination,
    Fake,
    Hidden,
    LengthCase,
    RateCase,
    Refusal,
    TextCase,
    setter,
)

TOKEN = "wh-tok-7Yq3XK9dLm2PzR7t"
API_KEY = "k-Vw4NcB8hJf6Gs1Ae"
PASSWORD = "пароль-U0oIy5TkQr"
QUERY_KEY = "q-Nc5dE8fG1hJ3kL6m"
OK = Raw(200, json.dumps({"ok": True, "id": 7}), "application/json")


# --- JSON, Jinja2, bearer token ---------------------------------------------------------------


def _json_fake() -> FakeWebhook:
    fake = FakeWebhook(token=TOKEN)
    fake.ok = OK
    return fake


def _json_channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
    params = {
        "url": f"{fake.base_url}/notify",
        "token": "${WEBHOOK_TOKEN}",
        "headers": {"X-Api-Key": "${WEBHOOK_KEY}", "X-Source": "notifierd"},
        "body": '{"text": "{{ message }}", "channel": "{{ channel }}", '
        '"attempt": {{ attempt | tojson }}}',
        "success_field": "ok",
        "max_length": 1000,
        "timeout": 2,
    }
    return params, {"WEBHOOK_TOKEN": TOKEN, "WEBHOOK_KEY": API_KEY}


def _json_text(fake: Fake, text: str) -> None:
    [request] = fake.accepted
    assert request.json() == {"text": text, "channel": "out", "attempt": 1}
    assert "Сервер «db-1»" in request.text  # UTF-8 as it is, not \u escapes
    assert request.headers["Content-Type"] == "application/json"
    assert (request.headers["X-Api-Key"], request.headers["X-Source"]) == (API_KEY, "notifierd")


WEBHOOK_JSON = Destination(
    id="webhook-json",
    worker="webhook",
    fake=_json_fake,
    channel=_json_channel,
    delivered=lambda fake: [payload["text"] for payload in fake.payloads],
    text=TextCase(_json_text),
    length=LengthCase(
        refused="🔥" * 1001,
        reason="1001 characters long; this channel accepts at most 1000",
        longest="🔥" * 1000,
    ),
    limits=(
        RateCase(
            Raw(429, "slow down", "text/plain", {"Retry-After": "2"}), (2.0, 2.5), retry_after=2
        ),
    ),
    bad_secrets=(
        BadSecret(
            setter("token", "wh-tok-revoked-000000"),
            setter("token", TOKEN),
            'webhook: HTTP 401: {"error": "unauthorized"}: check params.url and the '
            "credentials of channel 'out'",
        ),
    ),
    refusal=Refusal(
        Raw(400, json.dumps({"error": "text: too long for this room"}), "application/json"),
        'webhook: HTTP 400: {"error": "text: too long for this room"}',
    ),
    hidden=Hidden(
        lambda fake: [
            Raw(502, f"<html>bad gateway {TOKEN} {API_KEY}</html>"),
            Reset(),
            Raw(429, "", "text/plain", {"Retry-After": "0.2"}),
        ],
        (TOKEN, API_KEY),
        "webhook: HTTP 502: <html>bad gateway *** ***</html>",
    ),
)

# --- a form, placeholders, HTTP Basic ---------------------------------------------------------


def _form_channel(fake: Fake) -> tuple[dict[str, Any], dict[str, str]]:
    params = {
        "url": f"{fake.base_url}/form?api_key=${{WEBHOOK_QUERY_KEY}}",
        "username": "ops",
        "password": "${WEBHOOK_PASSWORD}",
        "content_type": "form",
        "body": "text={message}&to={recipient}&try={attempt}",
        "recipients": ["дежурный"],
        "timeout": 2,
    }
    return params, {"WEBHOOK_PASSWORD": PASSWORD, "WEBHOOK_QUERY_KEY": QUERY_KEY}


def _form(fake: Fake) -> list[dict[str, str]]:
    return [dict(parse_qsl(request.text)) for request in fake.accepted]


def _form_text(fake: Fake, text: str) -> None:
    assert _form(fake) == [{"text": text, "to": "дежурный", "try": "1"}]
    [request] = fake.accepted
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.query == {"api_key": QUERY_KEY}


WEBHOOK_FORM = Destination(
    id="webhook-form",
    worker="webhook",
    fake=lambda: FakeWebhook(login=("ops", PASSWORD)),
    channel=_form_channel,
    delivered=lambda fake: [form["text"] for form in _form(fake)],
    text=TextCase(_form_text),
    bad_secrets=(
        BadSecret(
            setter("login", ("ops", "old-password")),
            setter("login", ("ops", PASSWORD)),
            'webhook: HTTP 401: {"error": "unauthorized"}: check',
        ),
    ),
    hidden=Hidden(
        lambda fake: [Raw(502, f"bad gateway {PASSWORD} /form?api_key={QUERY_KEY}"), Reset()],
        (PASSWORD, QUERY_KEY),
        "webhook: HTTP 502: bad gateway *** ***",
    ),
)

WEBHOOK_DESTINATIONS = (WEBHOOK_JSON, WEBHOOK_FORM)
