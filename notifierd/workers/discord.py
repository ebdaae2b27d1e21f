"""The `discord` worker: posts each delivery to a Discord channel through an incoming webhook.

The text goes as the message's `content` (Discord's markdown is rendered as written), at most
2000 characters. `allowed_mentions` defaults to none, so that an alert quoting `@everyone`, a
role or a user does not ping anyone; `mentions: [users, roles, everyone]` allows them again.

How answers are classified (Discord's API reference, "Rate Limits" and "Errors"):

- 2xx: delivered. `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset-After` makes this process
  wait out the bucket before its next request instead of collecting a 429;
- 429: `RateLimited` after the body's `retry_after` (seconds, a float), else `Retry-After`,
  else `X-RateLimit-Reset-After`;
- connection failures, timeouts, 408, 5xx: `TemporaryFailure`;
- 401, 403, 404 ("Invalid Webhook Token", "Unknown Webhook"): `ChannelMisconfigured`;
- other 4xx ("Invalid Form Body" and its field errors): `PermanentFailure` with Discord's text.

The webhook URL holds the webhook's token: it is a secret, kept out of logs and errors with its
path and token segment (`url_secrets`).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import requests
from pydantic import BaseModel, Field

from notifierd.errors import ChannelMisconfigured, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import hashed_rate_key
from notifierd.workers.remote import (
    IncomingWebhookParams,
    IncomingWebhookWorker,
    answer_failure,
    excerpt,
    json_object,
    parse_retry_after,
    seconds,
)

#: Discord's limit on a message's `content`.
CONTENT_LIMIT = 2000
Mention = Literal["users", "roles", "everyone"]


class DiscordParams(IncomingWebhookParams):
    """The `params` of a `discord` channel."""

    #: The name and avatar the message shows instead of the webhook's own; null: the webhook's.
    username: str | None = Field(default=None, min_length=1, max_length=80)
    avatar_url: str | None = None
    #: Which mentions in the text notify: none by default, so an alert cannot ping @everyone.
    mentions: tuple[Mention, ...] = ()
    #: Send the message as text-to-speech.
    tts: bool = False
    #: Messages per second for the webhook (Discord: 30 per minute per channel); null: none.
    rate_per_second: float | None = Field(default=0.5, gt=0)


class DiscordWorker(IncomingWebhookWorker[DiscordParams]):
    """Posts deliveries to a Discord webhook."""

    Params: ClassVar[type[BaseModel]] = DiscordParams
    max_length: ClassVar[int] = CONTENT_LIMIT
    service: ClassVar[str] = "discord"

    def __init__(self, channel: str, params: DiscordParams) -> None:
        super().__init__(channel, params)
        #: When the webhook's bucket, emptied by our last message, refills (monotonic).
        self._bucket_refills = 0.0

    @classmethod
    def rate_key(cls, params: DiscordParams) -> str | None:
        """Discord limits a webhook, whichever channel posts to it."""
        parts = urlsplit(params.webhook_url.get_secret_value())
        return hashed_rate_key("discord", urlunsplit(parts._replace(query="", fragment="")))

    def endpoint(self) -> str:
        # wait=true: Discord answers with the message it created, after it did.
        url = self.params.webhook_url.get_secret_value()
        return url + ("&" if urlsplit(url).query else "?") + "wait=true"

    def send(self, delivery: Delivery) -> None:
        wait = self._bucket_refills - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, self.timeout()))
        response = self.post_json(self.endpoint(), self._payload(delivery.message))
        self._note_bucket(response)
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _payload(self, text: str) -> dict[str, Any]:
        params = self.params
        payload: dict[str, Any] = {
            "content": text,
            "allowed_mentions": {"parse": list(params.mentions)},
        }
        if params.username is not None:
            payload["username"] = params.username
        if params.avatar_url is not None:
            payload["avatar_url"] = params.avatar_url
        if params.tts:
            payload["tts"] = True
        return payload

    def _note_bucket(self, response: requests.Response) -> None:
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset_after = seconds(response.headers.get("X-RateLimit-Reset-After"))
            if reset_after is not None:
                self._bucket_refills = time.monotonic() + reset_after

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        body = json_object(response)
        # The body's float retry_after is the most precise; the headers round or differ.
        retry_after = seconds((body or {}).get("retry_after"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = seconds(response.headers.get("X-RateLimit-Reset-After"))
        return answer_failure(
            f"discord: HTTP {status}: {_error_text(body, response)}",
            status,
            retry_after,
            f"set params.webhook_url of channel {self.channel!r} to the URL of a webhook of the "
            "Discord channel (Integrations, Webhooks, Copy Webhook URL)",
        )


def _error_text(body: dict[str, Any] | None, response: requests.Response) -> str:
    """Discord's error: its `message`, `code` and the first field error of an invalid body."""
    if body is None or not isinstance(body.get("message"), str):
        return excerpt(response.text) or "no error text"
    text = body["message"]
    if isinstance(body.get("code"), int) and body["code"]:
        text += f" (code {body['code']})"
    field_errors = list(_field_errors(body.get("errors"), ""))
    if field_errors:
        text += ": " + "; ".join(field_errors[:3])
    return excerpt(text, 300)


def _field_errors(errors: object, path: str) -> list[str]:
    """`errors` of an "Invalid Form Body", flattened: `content: Must be 2000 or fewer in
    length.`"""
    if not isinstance(errors, dict):
        return []
    found: list[str] = []
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            found += [f"{path}: {e['message']}" for e in value if isinstance(e, dict)]
        else:
            found += _field_errors(value, f"{path}.{key}" if path else str(key))
    return found
