"""The `gotify` worker: posts each delivery to a Gotify server as a message of an application
(`POST /message` with the application's token in `X-Gotify-Key`), JSON with `message`,
`title` and `priority`.

Gotify keeps any text (no published limit), so only the server's `max_body_size` bounds a
message, and it publishes no rate limit: a channel is not paced unless `rate_per_second` says
so. How answers are classified (Gotify's errors are `{"error", "errorCode",
"errorDescription"}`):

- 200: delivered;
- 429 (from a proxy in front of it): a rate limit after its `Retry-After`;
- connection failures, timeouts, 408, 5xx: temporary;
- 401, 403, 404 (a bad token, or `server` is not Gotify): misconfigured;
- other 4xx: refused with Gotify's description.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from pydantic import BaseModel, Field, SecretStr, field_validator

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
)


class GotifyParams(HttpParams):
    """The `params` of a `gotify` channel."""

    #: The Gotify server, e.g. https://gotify.example.org.
    server: str
    #: An application's token (Apps, the eye icon), usually "${GOTIFY_TOKEN}".
    token: SecretStr = Field(min_length=1)
    title: str | None = Field(default=None, min_length=1)
    #: 0-10; Gotify's Android app notifies from 4, with sound from 8.
    priority: int = Field(default=5, ge=0, le=10)
    #: Render the message as Markdown in Gotify's clients.
    markdown: bool = False
    #: Messages per second; null (the default): not paced.
    rate_per_second: float | None = Field(default=None, gt=0)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return http_url(value, "server").rstrip("/")


class GotifyWorker(HttpWorker[GotifyParams]):
    """Posts deliveries to a Gotify application."""

    Params: ClassVar[type[BaseModel]] = GotifyParams
    max_length: ClassVar[int | None] = None
    service: ClassVar[str] = "gotify"

    @classmethod
    def channel_rate(cls, params: GotifyParams) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: GotifyParams) -> str | None:
        return hashed_rate_key("gotify", f"{params.server} {params.token.get_secret_value()}")

    def endpoint(self) -> str:
        return f"{self.params.server}/message"

    def send(self, delivery: Delivery) -> None:
        params = self.params
        payload: dict[str, Any] = {"message": delivery.message, "priority": params.priority}
        if params.title is not None:
            payload["title"] = params.title
        if params.markdown:
            payload["extras"] = {"client::display": {"contentType": "text/markdown"}}
        response = self.post_json(
            self.endpoint(), payload, headers={"X-Gotify-Key": params.token.get_secret_value()}
        )
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        body = json_object(response) or {}
        error, description = body.get("error"), body.get("errorDescription")
        if isinstance(error, str):
            detail = f"{error}: {description}" if isinstance(description, str) else error
        else:
            detail = excerpt(response.text) or "no error text"
        return answer_failure(
            f"gotify: HTTP {status}: {detail}",
            status,
            parse_retry_after(response.headers.get("Retry-After")),
            f"check params.server and token (an application's token) of channel {self.channel!r}",
        )
