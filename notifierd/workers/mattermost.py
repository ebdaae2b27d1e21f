"""The `mattermost` worker: posts each delivery to a Mattermost channel through an incoming
webhook (`POST {webhook_url}` with `{"text": ...}`).

The text is Mattermost Markdown, shown as written. A post holds at most 16,383 characters
(Mattermost's `PostMessageMaxRunesV2`); a longer message is refused at intake.

How answers are classified (Mattermost answers `ok`, or an AppError `{"id", "message",
"detailed_error", "status_code"}`):

- 2xx: delivered;
- 429 (the server's rate limiting, when enabled): a rate limit after `Retry-After`, else
  `X-RateLimit-Reset`, no attempt charged;
- connection failures, timeouts, 408, 5xx: temporary;
- 401, 403, 404, an unknown or disabled webhook (`web.incoming_webhook.invalid.app_error`,
  which Mattermost answers with a 400, `...disabled.app_error` with a 501) and a channel it
  may not post to: misconfigured;
- other 4xx: refused with Mattermost's message.
"""

from __future__ import annotations

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

#: The most characters of one post (Mattermost's PostMessageMaxRunesV2).
POST_LIMIT = 16_383
#: AppError ids that mean the webhook or its channel is wrong, whatever the status.
CONFIG_ERRORS = frozenset(
    {
        "web.incoming_webhook.invalid.app_error",
        "web.incoming_webhook.disabled.app_error",
        "web.incoming_webhook.channel.app_error",
        "web.incoming_webhook.channel_locked.app_error",
        "web.incoming_webhook.permissions.app_error",
        "web.incoming_webhook.user.app_error",
    }
)
#: An X-RateLimit-Reset above this is a Unix time, not seconds to wait.
_EPOCH = 1_000_000_000


class MattermostParams(IncomingWebhookParams):
    """The `params` of a `mattermost` channel."""

    #: Overrides of the webhook's own, where the server allows them.
    username: str | None = Field(default=None, min_length=1)
    icon_url: str | None = None
    channel: str | None = Field(default=None, min_length=1)


class MattermostWorker(IncomingWebhookWorker[MattermostParams]):
    """Posts deliveries to a Mattermost incoming webhook."""

    Params: ClassVar[type[BaseModel]] = MattermostParams
    max_length: ClassVar[int] = POST_LIMIT
    service: ClassVar[str] = "mattermost"

    def send(self, delivery: Delivery) -> None:
        params = self.params
        payload: dict[str, Any] = {"text": delivery.message}
        optional = {"username": params.username, "icon_url": params.icon_url}
        optional["channel"] = params.channel
        payload.update({name: value for name, value in optional.items() if value is not None})
        response = self.post_json(self.endpoint(), payload)
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        body = json_object(response) or {}
        message, error_id = body.get("message"), body.get("id")
        if isinstance(message, str):
            detail = f"{message} ({error_id})" if isinstance(error_id, str) else message
        else:
            detail = excerpt(response.text) or "no error text"
        if error_id in CONFIG_ERRORS:
            status = 404  # what it means, whatever Mattermost answered it with
        return answer_failure(
            f"mattermost: HTTP {response.status_code}: {detail}",
            status,
            _retry_after(response),
            f"check params.webhook_url (and channel) of channel {self.channel!r}",
        )


def _retry_after(response: requests.Response) -> float | None:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None:
        reset = seconds(response.headers.get("X-RateLimit-Reset"))
        if reset is not None and reset > _EPOCH:
            reset = max(0.0, reset - time.time())
        retry_after = reset
    return retry_after
