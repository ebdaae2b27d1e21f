"""The SMS gateways the `sms` worker speaks to: their parameters, their HTTP protocol, and how
their answers map to delivered / temporary / permanent / misconfigured.

- `twilio`: `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, HTTP Basic (an
  API key, or the account SID and auth token), form fields `To`, `From` or
  `MessagingServiceSid`, `Body`, `ValidityPeriod` (what is left of the TTL, when Twilio's range
  holds it); 2xx (201) = accepted.
- `smsru`: `POST {base_url}/sms/send` with `api_id`, `to`, `msg`, `json=1` (and `from`); HTTP 200
  even on errors, with a request-level `status_code` and one per number.
- `http`: any gateway (Kannel and alike): the method, URL, body and headers are templates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote, quote_plus

import requests
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.workers.base import RegexPattern, repeated
from notifierd.workers.remote import (
    connection_failure,
    excerpt,
    is_http_url,
    parse_retry_after,
    status_failure,
)

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
#: The most parts a channel may allow: Twilio takes up to 1600 characters, 10 GSM-7 parts.
MAX_PARTS_LIMIT = 10
#: SMS.ru refuses a text longer than 8 SMS (status 205).
SMSRU_MAX_PARTS = 8


def _check_e164(phone: str) -> str:
    if E164.fullmatch(phone) is None:
        raise ValueError(
            f"phone number {phone!r} is not in E.164 form: '+' then 8 to 15 digits, the "
            "first not 0, no spaces or dashes (for example +79251234567)"
        )
    return phone


def _check_base_url(url: str) -> str:
    if not is_http_url(url, query=False):
        raise ValueError(f"{url!r} is not an http:// or https:// URL without query or fragment")
    return url.rstrip("/")


Phone = Annotated[str, AfterValidator(_check_e164)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]


class SmsParamsBase(BaseModel):
    """What every provider shares. `phones` get one delivery each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phones: list[Phone] = Field(min_length=1)
    sender: str | None = Field(default=None, min_length=1, description="sender name or number")
    max_parts: int = Field(default=6, ge=1, le=MAX_PARTS_LIMIT)
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds, per request")

    @field_validator("phones")
    @classmethod
    def _distinct(cls, phones: list[str]) -> list[str]:
        twice = repeated(phones)
        if twice is not None:
            raise ValueError(f"phone number {twice!r} is listed twice")
        return phones


# --- Twilio -----------------------------------------------------------------------------------


class TwilioParams(SmsParamsBase):
    """Twilio's parameters. It authenticates with an API key (`api_key_sid` + `api_key_secret`,
    as Twilio recommends: revocable, and limited to what the key may do) or with the account's
    `auth_token`; exactly one of the two."""

    provider: Literal["twilio"]
    account_sid: str = Field(pattern=r"^[A-Za-z0-9]+$")
    auth_token: SecretStr | None = None
    api_key_sid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]+$")
    api_key_secret: SecretStr | None = None
    messaging_service_sid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]+$")
    base_url: BaseUrl = "https://api.twilio.com"

    @model_validator(mode="after")
    def _has_origin(self) -> Self:
        if self.sender is None and self.messaging_service_sid is None:
            raise ValueError("twilio needs `sender` (the From number) or `messaging_service_sid`")
        return self

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        key = (self.api_key_sid is not None, self.api_key_secret is not None)
        if key == (True, False):
            raise ValueError("`api_key_sid` needs `api_key_secret` (the key's secret)")
        if key == (False, True):
            raise ValueError("`api_key_secret` needs `api_key_sid` (the key's SID, SK...)")
        if self.auth_token is None and not any(key):
            raise ValueError(
                "twilio needs an API key (`api_key_sid` and `api_key_secret`, as Twilio "
                "recommends) or the account's `auth_token`"
            )
        if self.auth_token is not None and any(key):
            raise ValueError(
                "twilio takes an API key (`api_key_sid` and `api_key_secret`) or `auth_token`, "
                "not both: remove one"
            )
        return self

    def basic_auth(self) -> tuple[str, str]:
        """HTTP Basic's user and password; the account SID stays in the URL either way."""
        if self.api_key_sid is not None and self.api_key_secret is not None:
            return self.api_key_sid, self.api_key_secret.get_secret_value()
        assert self.auth_token is not None  # checked at config load
        return self.account_sid, self.auth_token.get_secret_value()


TWILIO_AUTHENTICATION = 20003
TWILIO_TOO_MANY_REQUESTS = 20429
#: The From number is invalid (21212), not SMS-capable (21606) or not a Twilio number (21659):
#: every message of the channel would fail until its `sender` is fixed.
TWILIO_BAD_SENDER = frozenset({21212, 21606, 21659})
#: The From number's queue holds 10 hours of messages already: it drains, so try again later.
TWILIO_QUEUE_FULL = 21611
#: The longest `ValidityPeriod` Twilio takes (10 hours, also its default); the shortest is 1.
TWILIO_MAX_VALIDITY = 36000


def validity_period(expires_at: float, now: float) -> int | None:
    """The seconds Twilio may keep the message queued: what is left of the delivery's
    time-to-live, so that Twilio never sends it after notifierd would have let it expire.
    None when that is more than Twilio's maximum (its default, the maximum, then applies)."""
    if not math.isfinite(expires_at):
        return None
    left = max(1, math.ceil(expires_at - now))
    return left if left <= TWILIO_MAX_VALIDITY else None


def send_twilio(
    session: requests.Session,
    params: TwilioParams,
    phone: str,
    text: str,
    validity: int | None = None,
) -> str:
    """Send through Twilio; the message SID on success. `validity`: see `validity_period`."""
    url = f"{params.base_url}/2010-04-01/Accounts/{quote(params.account_sid)}/Messages.json"
    form = {"To": phone, "Body": text}
    if params.messaging_service_sid is not None:
        form["MessagingServiceSid"] = params.messaging_service_sid
    else:
        assert params.sender is not None  # checked at config load
        form["From"] = params.sender
    if validity is not None:
        form["ValidityPeriod"] = str(validity)
    try:
        response = session.post(
            url,
            data=form,
            auth=params.basic_auth(),
            timeout=params.timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise connection_failure("twilio", exc) from None
    body = _json_or_none(response)
    if 200 <= response.status_code < 300:
        return str(body.get("sid", "")) if isinstance(body, dict) else ""
    raise twilio_failure(response, body)


def twilio_failure(response: requests.Response, body: Any) -> DeliveryError:
    """Twilio's error answer `{code, message, status}` (or a non-JSON one) as an outcome."""
    status = response.status_code
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(body, dict) and body.get("message"):
        detail = f"error {code}: {body['message']}"
    else:
        detail = excerpt(response.text)
    text = f"twilio: HTTP {status}: {detail}"
    if code == TWILIO_AUTHENTICATION or status == 401:
        return ChannelMisconfigured(text)
    if code in TWILIO_BAD_SENDER:
        return ChannelMisconfigured(f"{text} (check `sender` / `messaging_service_sid`)")
    if status == 429 or code == TWILIO_TOO_MANY_REQUESTS:
        return RateLimited(text, parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500 or code == TWILIO_QUEUE_FULL:
        return TemporaryFailure(text)
    if 400 <= status < 500:
        return PermanentFailure(text)
    if 300 <= status < 400:
        return ChannelMisconfigured(f"{text} (a redirect: check base_url)")
    return TemporaryFailure(text)


# --- SMS.ru -----------------------------------------------------------------------------------


class SmsRuParams(SmsParamsBase):
    provider: Literal["smsru"]
    api_id: SecretStr
    max_parts: int = Field(default=6, ge=1, le=SMSRU_MAX_PARTS)
    base_url: BaseUrl = "https://sms.ru"


SMSRU_OK = 100
SMSRU_PERMANENT = frozenset({202, 203, 205, 207, 209})
SMSRU_TEMPORARY = frozenset({206, 220, 230, 231, 232, 233, 500})
#: Bad credentials (200, 300, 301), no money left (201), a sender name SMS.ru has not approved
#: (204): every message of the channel fails until an operator acts, whichever number it is for.
SMSRU_MISCONFIGURED = frozenset({200, 201, 204, 300, 301})
#: The per-number limit on identical messages per minute (231): retried once the minute has
#: passed, not at the channel's retry pace, which could spend every attempt inside it. A
#: Retry-After holds back the whole channel (DESIGN §2), so the daily limits (230, 232) keep the
#: channel's pace: waiting out a day would stop every other message of the account with it.
SMSRU_RETRY_AFTER = {231: 60.0}


@dataclass(frozen=True, slots=True)
class SmsRuStatus:
    code: int
    text: str
    sms_id: str | None = None


@dataclass(frozen=True, slots=True)
class SmsRuAnswer:
    """An answer of `sms/send`: the request-level status and one status per number (digits
    only, no '+', as SMS.ru writes them)."""

    status: SmsRuStatus
    numbers: dict[str, SmsRuStatus]


def parse_smsru_answer(data: Any) -> SmsRuAnswer:
    """Read a `json=1` answer. Raises `ValueError` when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    status = _smsru_status(data)
    numbers: dict[str, SmsRuStatus] = {}
    sms = data.get("sms", {})
    if not isinstance(sms, dict):
        raise ValueError("`sms` is not an object")
    for number, entry in sms.items():
        if not isinstance(entry, dict):
            raise ValueError(f"the status of {number} is not an object")
        numbers[str(number).lstrip("+")] = _smsru_status(entry)
    return SmsRuAnswer(status, numbers)


def _smsru_status(entry: dict[str, Any]) -> SmsRuStatus:
    code = entry.get("status_code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError("`status_code` is missing or not a number")
    sms_id = entry.get("sms_id")
    text = str(entry.get("status_text", ""))
    return SmsRuStatus(code, text, None if sms_id is None else str(sms_id))


def smsru_failure(status: SmsRuStatus, where: str) -> DeliveryError | None:
    """None for 100 (accepted), else the outcome an SMS.ru status code means. Codes SMS.ru may
    add later count as a refusal of the message."""
    if status.code == SMSRU_OK:
        return None
    text = f"sms.ru: {where}: status {status.code}"
    if status.text:
        text += f": {status.text}"
    if status.code in SMSRU_TEMPORARY:
        return TemporaryFailure(text, SMSRU_RETRY_AFTER.get(status.code))
    if status.code in SMSRU_MISCONFIGURED:
        return ChannelMisconfigured(text)
    return PermanentFailure(text)


def send_smsru(session: requests.Session, params: SmsRuParams, phone: str, text: str) -> str:
    """Send through SMS.ru (one number per request); the SMS id on success."""
    form = {
        "api_id": params.api_id.get_secret_value(),
        "to": phone.lstrip("+"),
        "msg": text,
        "json": "1",
    }
    if params.sender is not None:
        form["from"] = params.sender
    try:
        # POST, so that api_id is in the body and never in a URL that an error could quote.
        response = session.post(
            f"{params.base_url}/sms/send",
            data=form,
            timeout=params.timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise connection_failure("sms.ru", exc) from None
    if response.status_code != 200:
        raise status_failure("sms.ru", response, excerpt(response.text))
    try:
        answer = parse_smsru_answer(response.json())
    except ValueError as exc:
        detail = excerpt(response.text)
        raise TemporaryFailure(f"sms.ru: unreadable answer ({exc}): {detail}") from None
    failure = smsru_failure(answer.status, "request")
    if failure is not None:
        raise failure
    number = answer.numbers.get(phone.lstrip("+"))
    if number is None:
        raise TemporaryFailure(f"sms.ru: the answer has no status for {phone}")
    failure = smsru_failure(number, phone)
    if failure is not None:
        raise failure
    return number.sms_id or ""


# --- A generic HTTP gateway -------------------------------------------------------------------

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


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
