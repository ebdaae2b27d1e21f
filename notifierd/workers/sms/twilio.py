"""Twilio: `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, HTTP Basic (an
API key, or the account SID and auth token), form fields `To`, `From` or `MessagingServiceSid`,
`Body`, `ValidityPeriod` (what is left of the TTL, when Twilio's range holds it); 2xx (201) =
accepted."""

from __future__ import annotations

import math
from typing import Any, Literal, Self
from urllib.parse import quote

import requests
from pydantic import Field, SecretStr, model_validator

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.workers.remote import connection_failure, excerpt, parse_retry_after
from notifierd.workers.sms.base import BaseUrl, SmsParamsBase


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


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
