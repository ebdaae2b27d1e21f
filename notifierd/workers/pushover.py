"""The `pushover` worker: sends each delivery as a Pushover notification to a user or group
key (`POST /1/messages.json`, form-encoded, with the application's token).

Pushover's documented limits: a message of at most 1024 characters, a title of 250; an
application sends 10,000 messages a month on the free plan (`X-Limit-App-*` headers), at most
two requests at a time, and after a 5xx no more than one every 5 seconds. Emergency priority
(2) needs `retry` (at least 30 s) and `expire` (at most 10,800 s).

How answers are classified (Pushover answers `{"status": 1}` or `{"status": 0, "errors":
[...], "<field>": "invalid"}`):

- 200 with status 1: delivered;
- 429 (the application's monthly limit reached): a rate limit until `X-Limit-App-Reset`
  (capped, like every wait, at an hour), no attempt charged;
- connection failures, timeouts, 5xx: temporary;
- 4xx naming `token` or `user` invalid, 401, 403, 404: misconfigured;
- other 4xx: refused with Pushover's errors.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import requests
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from notifierd.errors import ChannelMisconfigured, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import hashed_rate_key
from notifierd.workers.remote import (
    HttpParams,
    HttpWorker,
    answer_failure,
    excerpt,
    http_url,
    json_object,
    parse_retry_after,
    seconds,
)

MESSAGE_LIMIT = 1024
TITLE_LIMIT = 250


class PushoverParams(HttpParams):
    """The `params` of a `pushover` channel."""

    #: The application's API token, usually "${PUSHOVER_TOKEN}".
    token: SecretStr = Field(min_length=1)
    #: The user or group key to notify, usually "${PUSHOVER_USER_KEY}".
    user_key: SecretStr = Field(min_length=1)
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_LIMIT)
    #: -2 (no notification) to 2 (emergency: repeated every `retry` s until acknowledged or
    #: `expire` s have passed).
    priority: int = Field(default=0, ge=-2, le=2)
    retry: int | None = Field(default=None, ge=30)
    expire: int | None = Field(default=None, ge=1, le=10_800)
    sound: str | None = None
    #: Send to these devices of the user only.
    device: tuple[str, ...] = ()
    #: Pushover's API; a test fake sets it.
    api_url: str = "https://api.pushover.net/1"

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return http_url(value, "api_url").rstrip("/")

    @model_validator(mode="after")
    def _emergency(self) -> PushoverParams:
        if self.priority == 2 and (self.retry is None or self.expire is None):
            raise ValueError("priority 2 (emergency) needs retry and expire")
        return self


class PushoverWorker(HttpWorker[PushoverParams]):
    """Sends deliveries as Pushover notifications."""

    Params: ClassVar[type[BaseModel]] = PushoverParams
    max_length: ClassVar[int] = MESSAGE_LIMIT
    service: ClassVar[str] = "pushover"

    @classmethod
    def rate_key(cls, params: PushoverParams) -> str | None:
        """Pushover counts the monthly messages of an application."""
        return hashed_rate_key("pushover", params.token.get_secret_value())

    def endpoint(self) -> str:
        return f"{self.params.api_url}/messages.json"

    def send(self, delivery: Delivery) -> None:
        response = self.request("POST", self.endpoint(), data=self._form(delivery.message))
        body = json_object(response)
        if 200 <= response.status_code < 300 and body is not None and body.get("status") == 1:
            return
        raise self._failure(response, body)

    def _form(self, text: str) -> dict[str, Any]:
        params = self.params
        form: dict[str, Any] = {
            "token": params.token.get_secret_value(),
            "user": params.user_key.get_secret_value(),
            "message": text,
        }
        optional = {
            "title": params.title,
            "priority": params.priority or None,
            "retry": params.retry,
            "expire": params.expire,
            "sound": params.sound,
            "device": ",".join(params.device) or None,
        }
        form.update({name: value for name, value in optional.items() if value is not None})
        return form

    def _failure(
        self, response: requests.Response, body: dict[str, Any] | None
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        errors = (body or {}).get("errors")
        if isinstance(errors, list) and errors:
            detail = "; ".join(str(error) for error in errors)
        else:
            detail = excerpt(response.text) or "no error text"
        text = f"pushover: HTTP {status}: {detail}"
        fix = f"check params.token and user_key of channel {self.channel!r}"
        if 400 <= status < 500 and "invalid" in (
            (body or {}).get("token"),
            (body or {}).get("user"),
        ):
            return answer_failure(text, 401, None, fix)
        if 200 <= status < 300:  # 200 without status 1: not Pushover's API
            return answer_failure(text + " (not Pushover's API)", 404, None, "check params.api_url")
        return answer_failure(text, status, _retry_after(response), fix)


def _retry_after(response: requests.Response) -> float | None:
    """A 429's wait: `Retry-After`, else until the monthly limit resets (`X-Limit-App-Reset`,
    a Unix time)."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None:
        reset = seconds(response.headers.get("X-Limit-App-Reset"))
        retry_after = None if reset is None else max(0.0, reset - time.time())
    return retry_after
