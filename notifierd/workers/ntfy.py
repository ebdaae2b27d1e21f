"""The `ntfy` worker: publishes each delivery to a topic of an ntfy server (ntfy.sh or one's
own), as JSON (`POST /` with `topic`, `message`, `title`, `priority`, `tags`), which carries
any Unicode in every field where headers could not.

ntfy keeps a message of up to 4096 bytes of UTF-8 (`message-size-limit`); a longer one would
become an attachment, so it is refused at intake instead. Access is anonymous, by an access
token (`tk_...`, sent as a bearer token) or by username and password (HTTP Basic).

How answers are classified (ntfy's errors are `{"code", "http", "error", "link"}`):

- 200: delivered;
- 429 (`42901` too many requests, `42903` daily quota, ...): a rate limit, after the
  `Retry-After` a proxy may add, else the channel's retry delay (ntfy itself names no time);
- connection failures, timeouts, 408, 5xx: temporary;
- 401, 403, 404 (`40101` unauthorized, `40301` forbidden): misconfigured;
- other 4xx: refused with ntfy's error text.

ntfy.sh lets a client burst 60 requests and then one every 5 s; alerts fit in the burst, so a
channel is not paced unless `rate_per_second` says so, and one that sends more keeps to
ntfy's 429s. Channels on one server with one login share that budget (`rate_key`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from notifierd.errors import ChannelMisconfigured, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import hashed_rate_key
from notifierd.workers.message_text import too_long
from notifierd.workers.remote import (
    HttpParams,
    HttpWorker,
    answer_failure,
    excerpt,
    http_url,
    json_object,
    parse_retry_after,
)

#: ntfy's default `message-size-limit`, in bytes of UTF-8.
MESSAGE_BYTES = 4096
PRIORITY_NAMES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}


class NtfyParams(HttpParams):
    """The `params` of an `ntfy` channel."""

    #: The ntfy server: https://ntfy.sh or a self-hosted one.
    server: str = "https://ntfy.sh"
    #: The topic to publish to (on ntfy.sh, anyone who knows its name may read it).
    topic: str = Field(pattern=r"^[-_A-Za-z0-9]{1,64}$")
    #: An access token (`tk_...`), or a username and password; none: anonymous.
    token: SecretStr | None = None
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    title: str | None = Field(default=None, min_length=1)
    #: 1 (min) to 5 (max), or its name: min, low, default, high, max (urgent).
    priority: int = Field(default=3, ge=1, le=5)
    #: Tags; those that name an emoji (`warning`, `rotating_light`) show as one.
    tags: tuple[str, ...] = ()
    #: Render the message as Markdown in the web app.
    markdown: bool = False
    #: A URL the notification opens when tapped.
    click: str | None = None
    #: Messages per second; null (the default): not paced, ntfy's 429s are kept to.
    rate_per_second: float | None = Field(default=None, gt=0)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return http_url(value, "server").rstrip("/")

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_name(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in PRIORITY_NAMES:
            return PRIORITY_NAMES[value.strip().lower()]
        return value

    @model_validator(mode="after")
    def _one_login(self) -> NtfyParams:
        if self.token is not None and (self.username is not None or self.password is not None):
            raise ValueError("give token, or username and password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class NtfyWorker(HttpWorker[NtfyParams]):
    """Publishes deliveries to an ntfy topic."""

    Params: ClassVar[type[BaseModel]] = NtfyParams
    max_length: ClassVar[int] = MESSAGE_BYTES
    service: ClassVar[str] = "ntfy"

    @classmethod
    def check_message(cls, params: NtfyParams, message: str) -> str | None:
        size = len(message.encode("utf-8", "surrogatepass"))
        if size > MESSAGE_BYTES:
            return too_long(size, MESSAGE_BYTES, "bytes of UTF-8")
        return None

    @classmethod
    def channel_rate(cls, params: NtfyParams) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: NtfyParams) -> str | None:
        """ntfy limits a visitor: a login, or anonymous clients by address, per server."""
        login = params.token or params.username or ""
        who = login.get_secret_value() if isinstance(login, SecretStr) else login
        return hashed_rate_key("ntfy", f"{params.server} {who}")

    def endpoint(self) -> str:
        return self.params.server

    def send(self, delivery: Delivery) -> None:
        params = self.params
        kwargs: dict[str, Any] = {}
        if params.token is not None:
            kwargs["headers"] = {"Authorization": f"Bearer {params.token.get_secret_value()}"}
        elif params.username is not None and params.password is not None:
            kwargs["auth"] = (params.username, params.password.get_secret_value())
        response = self.post_json(self.endpoint(), self._payload(delivery.message), **kwargs)
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _payload(self, text: str) -> dict[str, Any]:
        params = self.params
        payload: dict[str, Any] = {"topic": params.topic, "message": text}
        if params.title is not None:
            payload["title"] = params.title
        if params.priority != 3:
            payload["priority"] = params.priority
        if params.tags:
            payload["tags"] = list(params.tags)
        if params.markdown:
            payload["markdown"] = True
        if params.click is not None:
            payload["click"] = params.click
        return payload

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        body = json_object(response) or {}
        error = body.get("error")
        detail = f"{error} (code {body.get('code')})" if isinstance(error, str) else ""
        return answer_failure(
            f"ntfy: HTTP {status}: {detail or excerpt(response.text) or 'no error text'}",
            status,
            # ntfy names no time; a proxy in front of it may.
            parse_retry_after(response.headers.get("Retry-After")),
            "check params.server, topic and token (or username and password) of channel "
            f"{self.channel!r}",
        )
