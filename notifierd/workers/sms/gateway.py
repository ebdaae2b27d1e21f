"""A generic HTTP gateway (Kannel and alike): the method, URL, body and headers are
templates."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal, Self
from urllib.parse import quote, quote_plus

import requests
from pydantic import Field, SecretStr, model_validator

from notifierd.errors import PermanentFailure
from notifierd.workers.base import RegexPattern
from notifierd.workers.remote import connection_failure, excerpt, status_failure
from notifierd.workers.sms.base import SmsParamsBase

PLACEHOLDER = re.compile(r"\{(phone|message|sender|username|password)\}")
HEADER_PLACEHOLDERS = frozenset({"username", "password"})


class HttpGatewayParams(SmsParamsBase):
    """A gateway described by templates. `url`, `body` and header values may hold `{phone}`
    (E.164, with '+'), `{message}`, `{sender}`, `{username}` and `{password}` (headers: only
    the last two). Values are URL-encoded in the URL, encoded per `body_format` in the body."""

    provider: Literal["http"]
    method: Literal["GET", "POST", "PUT"] = "GET"
    url: str = Field(pattern=r"^https?://")
    body: str | None = None
    body_format: Literal["form", "json", "text"] = "form"
    headers: dict[str, str] = Field(default_factory=dict)
    username: str | None = None
    password: SecretStr | None = None
    basic_auth: bool = Field(default=False, description="send username/password as HTTP Basic")
    success_status: list[int] = Field(default_factory=list, description="empty: any 2xx")
    success_regex: RegexPattern | None = Field(
        default=None, description="searched in the answer body"
    )

    @model_validator(mode="after")
    def _templates_fit(self) -> Self:
        if self.body is not None and self.method == "GET":
            raise ValueError("a GET request has no body: use method POST or PUT")
        used = set(PLACEHOLDER.findall(self.url + (self.body or "")))
        missing = {"phone", "message"} - used
        if missing:
            names = " and ".join(f"{{{name}}}" for name in sorted(missing))
            raise ValueError(f"the url or the body must contain {names}")
        for name, value in self.headers.items():
            unsupported = set(PLACEHOLDER.findall(value)) - HEADER_PLACEHOLDERS
            if unsupported:
                raise ValueError(f"header {name!r}: only {{username}} and {{password}} allowed")
        if "sender" in used and self.sender is None:
            raise ValueError("the templates use {sender} but `sender` is not set")
        if self.basic_auth and (self.username is None or self.password is None):
            raise ValueError("basic_auth needs `username` and `password`")
        return self

    def values(self, phone: str, text: str) -> dict[str, str]:
        return {
            "phone": phone,
            "message": text,
            "sender": self.sender or "",
            "username": self.username or "",
            "password": "" if self.password is None else self.password.get_secret_value(),
        }


BODY_ENCODERS: dict[str, tuple[Callable[[str], str], str]] = {
    "form": (quote_plus, "application/x-www-form-urlencoded"),
    "json": (lambda value: json.dumps(value, ensure_ascii=False)[1:-1], "application/json"),
    "text": (lambda value: value, "text/plain; charset=utf-8"),
}


def fill(template: str, values: dict[str, str], encode: Callable[[str], str]) -> str:
    """`template` with each known placeholder replaced by its encoded value; other braces (a
    JSON body) are left alone."""
    return PLACEHOLDER.sub(lambda match: encode(values[match.group(1)]), template)


def send_http(session: requests.Session, params: HttpGatewayParams, phone: str, text: str) -> str:
    """Send through a templated gateway; the start of its answer on success."""
    values = params.values(phone, text)
    url = fill(params.url, values, lambda value: quote(value, safe=""))
    headers = {name: fill(value, values, str) for name, value in params.headers.items()}
    data: bytes | None = None
    if params.body is not None:
        encode, content_type = BODY_ENCODERS[params.body_format]
        data = fill(params.body, values, encode).encode()
        headers.setdefault("Content-Type", content_type)
    auth = None
    if params.basic_auth:
        assert params.username is not None and params.password is not None
        auth = (params.username, params.password.get_secret_value())
    try:
        response = session.request(
            params.method,
            url,
            data=data,
            headers=headers,
            auth=auth,
            timeout=params.timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise connection_failure("sms gateway", exc) from None
    answer = excerpt(response.text)
    status = response.status_code
    expected = params.success_status or range(200, 300)
    status_ok = status in expected
    if status_ok and (
        params.success_regex is None or re.search(params.success_regex, response.text)
    ):
        return answer
    if status_ok or 200 <= status < 300:
        raise PermanentFailure(f"sms gateway: HTTP {status} is not a success answer: {answer}")
    raise status_failure("sms gateway", response, answer)
