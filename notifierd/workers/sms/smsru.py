"""SMS.ru: `POST {base_url}/sms/send` with `api_id`, `to`, `msg`, `json=1` (and `from`); HTTP
200 even on errors, with a request-level `status_code` and one per number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import requests
from pydantic import Field, SecretStr

from notifierd.errors import ChannelMisconfigured, DeliveryError, PermanentFailure, TemporaryFailure
from notifierd.workers.remote import connection_failure, excerpt, status_failure
from notifierd.workers.sms.base import BaseUrl, SmsParamsBase

#: SMS.ru refuses a text longer than 8 SMS (status 205).
SMSRU_MAX_PARTS = 8


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
