"""The `sms` worker: a short message to a set of phone numbers through an SMS gateway.

Channel parameters (one delivery per phone):

```yaml
params:
  provider: twilio            # twilio | smsru | http, see sms_providers
  account_sid: AC0123...
  api_key_sid: SK0123...      # an API key, as Twilio recommends (or `auth_token` instead)
  api_key_secret: "${TWILIO_API_KEY_SECRET}"
  sender: "+15005550006"
  phones: ["+79251234567", "+447700900123"]
  max_parts: 6                # the longest message allowed, in SMS parts (default 6)
  timeout: 10                 # seconds per request
```

A message is accepted when it fits in `max_parts` parts: GSM-7 texts take 160 characters in one
SMS or 153 per part, UCS-2 texts (anything outside GSM-7, e.g. Cyrillic or an emoji) 70 or 67
UTF-16 units per part, an emoji taking two. SMS.ru sends at most 8 parts, so `max_parts` is
capped there at 8; elsewhere at 10.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import requests
import structlog
from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    RootModel,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from notifierd import __version__
from notifierd.messages import Delivery
from notifierd.workers.base import Worker, hashed_rate_key
from notifierd.workers.remote import BoundedSession
from notifierd.workers.sms_parts import SmsEncoding, count_parts
from notifierd.workers.sms_providers import (
    HttpGatewayParams,
    SmsRuParams,
    TwilioParams,
    send_http,
    send_smsru,
    send_twilio,
    validity_period,
)

log = structlog.get_logger("notifierd.worker.sms")

ProviderParams = Annotated[
    TwilioParams | SmsRuParams | HttpGatewayParams, Field(discriminator="provider")
]


class SmsParams(RootModel[ProviderParams]):
    """The parameters of an `sms` channel: one model per `provider`, all flat in `params`."""

    @model_validator(mode="wrap")
    @classmethod
    def _flat_locations(cls, data: Any, handler: ModelWrapValidatorHandler[SmsParams]) -> SmsParams:
        # A tagged union puts the tag first in an error's location ("twilio.phones.0"); the
        # YAML has no such key, so drop it, and point tag errors at `provider`.
        try:
            return handler(data)
        except ValidationError as exc:
            tag = data.get("provider") if isinstance(data, dict) else None
            details: list[InitErrorDetails] = []
            for error in exc.errors():
                loc = error["loc"]
                if tag is not None and loc[:1] == (tag,):
                    loc = loc[1:]
                elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                    loc = ("provider",)
                detail = InitErrorDetails(type=error["type"], loc=loc, input=error["input"])
                if "ctx" in error:
                    detail["ctx"] = error["ctx"]
                details.append(detail)
            raise ValidationError.from_exception_data(exc.title, details) from None


class SmsWorker(Worker[SmsParams]):
    """Sends each delivery as one request to the channel's gateway."""

    Params = SmsParams
    max_length = None  # counted in parts by check_message

    def __init__(self, channel: str, params: SmsParams) -> None:
        super().__init__(channel, params)
        self._session: requests.Session | None = None

    @classmethod
    def recipients(cls, params: SmsParams) -> list[str]:
        return list(params.root.phones)

    @classmethod
    def rate_key(cls, params: SmsParams) -> str | None:
        """A provider limits an account (Twilio's 20429 counts the account's requests),
        whichever channel, sender or number a message uses. A templated gateway's account is
        unknown to us: its channel is a budget of its own."""
        provider = params.root
        if isinstance(provider, TwilioParams):
            return hashed_rate_key("sms.twilio", provider.account_sid)
        if isinstance(provider, SmsRuParams):
            return hashed_rate_key("sms.smsru", provider.api_id.get_secret_value())
        return None

    @classmethod
    def check_message(cls, params: SmsParams, message: str) -> str | None:
        limit = params.root.max_parts
        parts = count_parts(message)
        if parts.parts <= limit:
            return None
        if parts.encoding is SmsEncoding.GSM7:
            length = f"{parts.units} septets long in GSM-7 (^{{}}[]~|€\\ take two)"
        else:
            length = f"{parts.units} UTF-16 units long in UCS-2 (an emoji takes two)"
        return (
            f"message is {length} and needs {parts.parts} SMS parts of {parts.per_part}; "
            f"this channel allows at most {limit} (max_parts)"
        )

    def open(self) -> None:
        self._session = BoundedSession()
        self._session.headers["User-Agent"] = f"notifierd/{__version__}"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def send(self, delivery: Delivery) -> None:
        if self._session is None:
            raise RuntimeError("SmsWorker.send() called before open()")
        params = self.params
        provider = params.root
        if isinstance(provider, TwilioParams):
            validity = validity_period(delivery.expires_at, time.time())
            remote_id = send_twilio(
                self._session, provider, delivery.recipient, delivery.message, validity
            )
        elif isinstance(provider, SmsRuParams):
            remote_id = send_smsru(self._session, provider, delivery.recipient, delivery.message)
        else:
            remote_id = send_http(self._session, provider, delivery.recipient, delivery.message)
        log.info(
            "sms.delivered",
            channel=delivery.channel,
            delivery_id=delivery.id,
            provider=provider.provider,
            recipient=delivery.recipient,
            parts=count_parts(delivery.message).parts,
            attempt=delivery.attempt,
            remote_id=remote_id,
        )
