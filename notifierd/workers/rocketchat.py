"""The `rocketchat` worker: posts each delivery to a Rocket.Chat channel through an incoming
webhook integration (`POST {webhook_url}`, `/hooks/{id}/{token}`, with `{"text": ...}`).

The text is Rocket.Chat Markdown, shown as written; a message holds at most 5000 characters
(the server's default `Message_MaxAllowedSize`; `max_length` follows a server that changed it).

How answers are classified (Rocket.Chat answers `{"success": true}` or `{"success": false,
"error": ...}`):

- 2xx: delivered;
- 429 (`error-too-many-requests`): a rate limit after `Retry-After`, else until
  `X-RateLimit-Reset` (milliseconds since the epoch), else the seconds its error names;
- connection failures, timeouts, 408, 5xx: temporary;
- 401, 403, 404, and "Invalid integration id or token provided." (a 400 on some versions):
  misconfigured;
- other 4xx: refused with Rocket.Chat's error.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import requests
from pydantic import BaseModel, Field

from notifierd.errors import ChannelMisconfigured, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.remote import (
    IncomingWebhookParams,
    IncomingWebhookWorker,
    answer_failure,
    excerpt,
    json_object,
    parse_retry_after,
    seconds,
)

#: Rocket.Chat's default Message_MaxAllowedSize, in characters.
MESSAGE_LIMIT = 5000
_BAD_INTEGRATION = "invalid integration id or token"
_WAIT = re.compile(r"wait (\d+(?:\.\d+)?) seconds")


class RocketChatParams(IncomingWebhookParams):
    """The `params` of a `rocketchat` channel."""

    #: The name and emoji (`:bell:`) the message shows instead of the integration's.
    alias: str | None = Field(default=None, min_length=1)
    emoji: str | None = Field(default=None, pattern=r"^:[a-z0-9_+-]+:$")
    #: The server's Message_MaxAllowedSize, when changed from Rocket.Chat's 5000.
    max_length: int = Field(default=MESSAGE_LIMIT, ge=1)


class RocketChatWorker(IncomingWebhookWorker[RocketChatParams]):
    """Posts deliveries to a Rocket.Chat incoming webhook."""

    Params: ClassVar[type[BaseModel]] = RocketChatParams
    max_length: ClassVar[int] = MESSAGE_LIMIT
    service: ClassVar[str] = "rocketchat"

    @classmethod
    def length_limit(cls, params: RocketChatParams) -> int | None:
        return params.max_length

    def send(self, delivery: Delivery) -> None:
        params = self.params
        payload: dict[str, Any] = {"text": delivery.message}
        if params.alias is not None:
            payload["alias"] = params.alias
        if params.emoji is not None:
            payload["emoji"] = params.emoji
        response = self.post_json(self.endpoint(), payload)
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        error = (json_object(response) or {}).get("error")
        detail = error if isinstance(error, str) else excerpt(response.text) or "no error text"
        if 400 <= status < 500 and _BAD_INTEGRATION in detail.lower():
            status = 404  # what it means, whatever status the version answers it with
        return answer_failure(
            f"rocketchat: HTTP {response.status_code}: {excerpt(detail, 300)}",
            status,
            _retry_after(response, detail),
            f"check params.webhook_url of channel {self.channel!r}",
        )


def _retry_after(response: requests.Response, detail: str) -> float | None:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None:
        reset_ms = seconds(response.headers.get("X-RateLimit-Reset"))
        if reset_ms is not None:
            retry_after = max(0.0, reset_ms / 1000 - time.time())
    if retry_after is None:
        named = _WAIT.search(detail)
        retry_after = float(named.group(1)) if named else None
    return retry_after
