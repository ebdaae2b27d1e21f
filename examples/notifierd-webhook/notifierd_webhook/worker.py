"""The `example-webhook` worker: POSTs each delivery as JSON `{channel, recipient, message}`
to a URL.

Outcomes, as notifierd's `Worker` base class asks:

- a 2xx answer: delivered;
- 429 (with its `Retry-After`): `RateLimited`, which costs the delivery no attempt;
- connection errors, timeouts and 5xx: `TemporaryFailure`;
- any other 4xx: `PermanentFailure` (the receiver refused this message).
"""

from __future__ import annotations

import requests
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from notifierd.errors import PermanentFailure, RateLimited, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import Worker
from notifierd.workers.remote import parse_retry_after

log = structlog.get_logger("notifierd_webhook")


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://\S+$")
    #: Sent as `Authorization: Bearer <token>` when set.
    token: SecretStr | None = None
    #: One delivery per recipient, passed along in the JSON; none: one delivery per message.
    recipients: list[str] = Field(default_factory=list)
    timeout: float = Field(default=10.0, gt=0, le=300)


class WebhookWorker(Worker[WebhookParams]):
    Params = WebhookParams
    max_length = 65_536

    def __init__(self, channel: str, params: WebhookParams) -> None:
        super().__init__(channel, params)
        self._session: requests.Session | None = None

    @classmethod
    def recipients(cls, params: WebhookParams) -> list[str]:
        return list(params.recipients) or [""]

    def open(self) -> None:
        self._session = requests.Session()
        if self.params.token is not None:
            token = self.params.token.get_secret_value()
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def send(self, delivery: Delivery) -> None:
        params = self.params
        if self._session is None:
            raise RuntimeError("WebhookWorker.send() called before open()")
        payload = {
            "channel": delivery.channel,
            "recipient": delivery.recipient,
            "message": delivery.message,
        }
        try:
            response = self._session.post(
                params.url, json=payload, timeout=params.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            # Not str(exc): it quotes the URL, which may carry a secret in its query string.
            raise TemporaryFailure(f"webhook: request failed: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            log.info("webhook.delivered", channel=delivery.channel, delivery_id=delivery.id)
            return
        detail = f"webhook: HTTP {status}: {' '.join(response.text.split())[:200]}"
        if status == 429:
            raise RateLimited(detail, parse_retry_after(response.headers.get("Retry-After")))
        if 400 <= status < 500:
            raise PermanentFailure(detail)
        raise TemporaryFailure(detail)
