"""The `teams` worker: posts each delivery to a Microsoft Teams channel through a Workflows
(Power Automate) webhook, as an Adaptive Card holding the text; or, with `format: connector`,
as the `{"text": ...}` of a legacy Office 365 connector's incoming webhook.

A Teams message may be about 28 KB; the text may take 25,000 bytes of it as JSON (UTF-8,
`\\n` two bytes), the card's envelope the rest.

How answers are classified:

- 2xx (a workflow answers 202 Accepted, a connector 200 `1`): delivered;
- 429 (`WorkflowTriggerIsThrottled`, or the connector's throttling): a rate limit after
  `Retry-After`, no attempt charged;
- connection failures, timeouts, 408, 5xx: temporary;
- 401, 403, 404 (`DirectApiAuthorizationRequired`, `WorkflowNotFound`, a deleted
  connector): misconfigured;
- other 4xx (`InvalidRequestContent`, "Bad payload received by generic incoming webhook"):
  refused with Teams' error.

The webhook URL carries its signature (`sig=` in its query): it is a secret, kept out of
logs and errors with its path and query.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel

from notifierd.errors import ChannelMisconfigured, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.message_text import too_long
from notifierd.workers.remote import (
    IncomingWebhookParams,
    IncomingWebhookWorker,
    answer_failure,
    excerpt,
    json_object,
    parse_retry_after,
)

#: The bytes of JSON the text may take in a message of about 28 KB.
TEXT_BYTES = 25_000
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def adaptive_card(text: str) -> dict[str, Any]:
    """The message a Workflows webhook posts: one Adaptive Card with the text, wrapped."""
    card = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
    }
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return {"type": "message", "attachments": [attachment]}


class TeamsParams(IncomingWebhookParams):
    """The `params` of a `teams` channel."""

    #: `card`: an Adaptive Card for a Workflows webhook; `connector`: a legacy Office 365
    #: connector's `{"text"}`.
    format: Literal["card", "connector"] = "card"


class TeamsWorker(IncomingWebhookWorker[TeamsParams]):
    """Posts deliveries to a Microsoft Teams webhook."""

    Params: ClassVar[type[BaseModel]] = TeamsParams
    max_length: ClassVar[int] = TEXT_BYTES
    service: ClassVar[str] = "teams"

    @classmethod
    def check_message(cls, params: TeamsParams, message: str) -> str | None:
        size = len(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2
        if size > TEXT_BYTES:
            return too_long(size, TEXT_BYTES, "bytes of JSON")
        return None

    def send(self, delivery: Delivery) -> None:
        text = delivery.message
        payload = adaptive_card(text) if self.params.format == "card" else {"text": text}
        response = self.post_json(self.endpoint(), payload)
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        error = (json_object(response) or {}).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            detail = f"{error.get('code')}: {error['message']}"
        else:
            detail = excerpt(response.text) or "no error text"
        return answer_failure(
            f"teams: HTTP {response.status_code}: {excerpt(detail, 300)}",
            response.status_code,
            parse_retry_after(response.headers.get("Retry-After")),
            f"check params.webhook_url and format of channel {self.channel!r}",
        )
