"""The `slack` worker: posts each delivery to a Slack channel, through an incoming webhook
(`webhook_url`) or as a bot with `chat.postMessage` (`token` and `channel_id`).

The text goes as the message's `text`, which Slack reads as mrkdwn: `&`, `<` and `>` are
escaped (`&amp;`, `&lt;`, `&gt;`) as Slack asks, so that an alert's `<b>` or `a < b` is shown
as written and cannot become a link or a `<!channel>` mention; `*bold*` and `_italic_` keep
their meaning. Slack keeps at most 40,000 characters of `text`, counted as sent, escapes
included; a longer message is refused at intake.

How answers are classified:

- an incoming webhook answers `ok` (200), or an HTTP error with a plain-text code:
  429 (with `Retry-After`) is a rate limit; 5xx temporary; 401/403/404/410 (`invalid_token`,
  `action_prohibited`, `no_service`, `channel_not_found`, `channel_is_archived`) mean the
  channel is misconfigured; other 4xx (`invalid_payload`, `no_text`) refuse the message;
- `chat.postMessage` answers 200 with `{"ok": false, "error": ...}`: `ratelimited` (or an
  HTTP 429 with `Retry-After`) is a rate limit; `internal_error`, `fatal_error`,
  `service_unavailable`, `request_timeout` are temporary; the token's and the channel's errors
  (`invalid_auth`, `channel_not_found`, `not_in_channel`, ...) mean misconfigured; the rest
  (`msg_too_long`, `no_text`, ...) refuse the message.

The webhook URL and the bot token are secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from notifierd.errors import ChannelMisconfigured, PermanentFailure, RateLimited, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import hashed_rate_key
from notifierd.workers.message_text import too_long
from notifierd.workers.remote import (
    HttpParams,
    HttpWorker,
    WebhookUrl,
    answer_failure,
    excerpt,
    http_url,
    json_object,
    parse_retry_after,
    url_secrets,
)

#: The most characters of `text` Slack keeps (it truncates beyond; chat.postMessage refuses).
TEXT_LIMIT = 40_000
#: chat.postMessage errors that mean the channel's settings are wrong, not the message.
CONFIG_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "org_login_required",
        "ekm_access_denied",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "team_access_not_granted",
    }
)
#: chat.postMessage errors that a later try may not get.
TEMPORARY_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_MRKDWN_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: str) -> str:
    """`text` with the characters Slack's mrkdwn reserves (`& < >`) escaped."""
    return text.translate(_MRKDWN_ESCAPES)


class SlackParams(HttpParams):
    """The `params` of a `slack` channel: `webhook_url`, or `token` and `channel_id`. Not
    `IncomingWebhookParams`, whose `webhook_url` is required: a bot posts without one."""

    #: An incoming webhook's URL (a secret), usually "${SLACK_WEBHOOK_URL}".
    webhook_url: WebhookUrl | None = None
    #: A bot token (`xoxb-...`) with the chat:write scope, and the channel's id (`C0123ABCD`).
    token: SecretStr | None = None
    channel_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{9,}$")
    #: Slack's Web API; a test fake sets it.
    api_url: str = "https://slack.com/api"
    #: Messages per second (Slack: about 1 per second per webhook or channel); null: none.
    rate_per_second: float | None = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _one_way(self) -> SlackParams:
        bot = self.token is not None or self.channel_id is not None
        if self.webhook_url is not None and bot:
            raise ValueError("give webhook_url, or token and channel_id, not both")
        if self.webhook_url is None and (self.token is None or self.channel_id is None):
            raise ValueError(
                "slack needs webhook_url (an incoming webhook), or token and channel_id "
                "(a bot posting with chat.postMessage)"
            )
        return self

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return http_url(value, "api_url").rstrip("/")


class SlackWorker(HttpWorker[SlackParams]):
    """Posts deliveries to Slack."""

    Params: ClassVar[type[BaseModel]] = SlackParams
    max_length: ClassVar[int] = TEXT_LIMIT
    service: ClassVar[str] = "slack"

    @classmethod
    def check_message(cls, params: SlackParams, message: str) -> str | None:
        length = len(escape(message))
        if length > TEXT_LIMIT:
            return too_long(length, TEXT_LIMIT, "characters once & < > are escaped")
        return None

    @classmethod
    def secrets(cls, params: SlackParams) -> list[str]:
        if params.webhook_url is not None:
            return url_secrets(params.webhook_url.get_secret_value())
        return super().secrets(params)

    @classmethod
    def channel_rate(cls, params: SlackParams) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: SlackParams) -> str | None:
        """Slack limits a webhook, or a bot's posts to one channel."""
        if params.webhook_url is not None:
            return hashed_rate_key("slack", params.webhook_url.get_secret_value())
        assert params.token is not None
        return hashed_rate_key("slack", f"{params.token.get_secret_value()} {params.channel_id}")

    def endpoint(self) -> str:
        if self.params.webhook_url is not None:
            return self.params.webhook_url.get_secret_value()
        return f"{self.params.api_url}/chat.postMessage"

    def send(self, delivery: Delivery) -> None:
        text = escape(delivery.message)
        params = self.params
        if params.webhook_url is not None:
            self._check_webhook_answer(self.post_json(self.endpoint(), {"text": text}))
            return
        assert params.token is not None
        response = self.post_json(
            self.endpoint(),
            {"channel": params.channel_id, "text": text},
            headers={"Authorization": f"Bearer {params.token.get_secret_value()}"},
        )
        self._check_api_answer(response)

    def _check_webhook_answer(self, response: requests.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        text = f"slack: HTTP {status}: {excerpt(response.text) or 'no error text'}"
        if status == 410:  # channel_is_archived
            raise self._misconfigured(text, "webhook_url")
        raise answer_failure(
            text,
            status,
            parse_retry_after(response.headers.get("Retry-After")),
            f"check params.webhook_url of channel {self.channel!r}",
        )

    def _check_api_answer(self, response: requests.Response) -> None:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        body = json_object(response)
        if body is None or not isinstance(body.get("ok"), bool):
            text = f"slack: HTTP {status}: {excerpt(response.text) or 'no error text'}"
            if status == 429:
                raise RateLimited(text, retry_after)
            if 300 <= status < 500 and status != 408:
                raise self._misconfigured(text + " (not Slack's Web API)", "api_url")
            raise TemporaryFailure(text)
        if body["ok"]:
            return
        error = str(body.get("error") or "unknown_error")
        text = f"slack: chat.postMessage: {error}{_detail(body)}"
        if error == "ratelimited" or status == 429:
            raise RateLimited(text, retry_after)
        if error in TEMPORARY_ERRORS or status >= 500:
            raise TemporaryFailure(text)
        if error in CONFIG_ERRORS:
            raise self._misconfigured(text, "token and channel_id")
        raise PermanentFailure(text)

    def _misconfigured(self, text: str, what: str) -> ChannelMisconfigured:
        return ChannelMisconfigured(
            f"{text}: check params.{what.replace(' and ', ' and params.')} of channel "
            f"{self.channel!r}; deliveries stay queued until it is fixed"
        )


def _detail(body: dict[str, Any]) -> str:
    """What else Slack said about an error: the scope it needed, its warnings."""
    extra = [f"needed {body['needed']}"] if isinstance(body.get("needed"), str) else []
    metadata = body.get("response_metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("messages"), list):
        extra += [str(m) for m in metadata["messages"][:2]]
    return f" ({'; '.join(extra)})" if extra else ""
