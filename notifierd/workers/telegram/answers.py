"""What the Bot API's answers mean for a delivery.

How answers are classified (PTB and the Bot API server agree, see provider-protocols.md §1):

- `parameters.migrate_to_chat_id` (a group became a supergroup): resend to the new id at once,
  and warn the operator to update `chat_id`;
- 429 / `parameters.retry_after`: `RateLimited` with exactly that `retry_after`;
- connection errors, timeouts, 5xx, a body that is not the Bot API's JSON: `TemporaryFailure`;
- 401, and a JSON 404 (a bad token): `ChannelMisconfigured`, saying what to fix;
- 400, 403 and other 4xx: `PermanentFailure` with Telegram's description.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.workers.remote import seconds
from notifierd.workers.telegram.params import ChatId


class MarkupRefusedError(PermanentFailure):
    """Telegram could not parse the message's markup ("can't parse entities")."""


class ChatMigratedError(Exception):
    """The chat became a supergroup with a new id (`parameters.migrate_to_chat_id`)."""

    def __init__(self, new_chat: int) -> None:
        super().__init__(new_chat)
        self.new_chat = new_chat


def classify(
    response: requests.Response, chat: ChatId, channel: str, api_url: str
) -> dict[str, Any]:
    """The `result` of a successful answer; else raises a `DeliveryError`, or
    `ChatMigratedError` when the chat moved."""
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not (isinstance(body, dict) and isinstance(body.get("ok"), bool)):
        raise _not_bot_api(response, channel, api_url)
    if body["ok"]:
        result = body.get("result")
        return result if isinstance(result, dict) else {}
    raw_parameters, error_code = body.get("parameters"), body.get("error_code")
    parameters: dict[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
    code: int = error_code if isinstance(error_code, int) else status
    description = str(body.get("description") or f"HTTP {status}")
    # As in PTB, the parameters win over the status code.
    if isinstance(parameters.get("migrate_to_chat_id"), int):
        raise ChatMigratedError(parameters["migrate_to_chat_id"])
    if code == 429 or "retry_after" in parameters:
        # Seconds, from the body or the header (Telegram sends no HTTP-date); none or 0:
        # the channel's retry policy.
        retry_after = (
            seconds(parameters.get("retry_after"))
            or seconds(response.headers.get("Retry-After"))
            or None
        )
        raise RateLimited(f"Telegram rate limit ({code} {description})", retry_after)
    raise _refusal(code, description, chat, channel, api_url)


def _refusal(
    code: int, description: str, chat: ChatId, channel: str, api_url: str
) -> DeliveryError:
    """The failure for an error answer that neither moves the chat nor limits the rate."""
    if code in (401, 404):
        return ChannelMisconfigured(
            f"Telegram rejected the bot token ({code} {description}): set params.token of "
            f"channel {channel!r} (usually ${{TELEGRAM_BOT_TOKEN}}) to the token "
            f"@BotFather gave, and check that api_url {api_url!r} is a Bot "
            "API server; deliveries stay queued until it is fixed"
        )
    if code >= 500 or code == 408:
        return TemporaryFailure(f"Telegram server error ({code} {description})")
    if code == 400 and "can't parse entities" in description.lower():
        return MarkupRefusedError(
            f"Telegram refused the message's formatting for chat {chat} ({code} {description})"
        )
    return PermanentFailure(f"Telegram refused the message for chat {chat} ({code} {description})")


def _not_bot_api(response: requests.Response, channel: str, api_url: str) -> DeliveryError:
    """The failure for an answer that is not the Bot API's JSON envelope."""
    status = response.status_code
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    what = f"HTTP {status} with a body that is not Bot API JSON ({kind})"
    if status == 404 or 300 <= status < 400:
        # Telegram itself answers 404 in JSON; an HTML 404 or a redirect means api_url
        # does not point at a Bot API server, which a retry will not change.
        return ChannelMisconfigured(
            f"api_url {api_url!r} of channel {channel!r} does not look "
            f"like a Bot API server: {what}; deliveries stay queued until it is fixed"
        )
    # A 502 HTML page from Telegram's front end, a proxy's error page: come back later.
    return TemporaryFailure(f"Telegram answered {what}")


def prefixed(failure: DeliveryError, prefix: str) -> DeliveryError:
    """The same outcome as `failure`, its message prefixed (to say which part failed)."""
    message = prefix + failure.message
    if isinstance(failure, TemporaryFailure):
        return type(failure)(message, failure.retry_after)
    return type(failure)(message)
