"""The `params` of an `sms` channel: one model per `provider`, all flat in `params`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    RootModel,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from notifierd.workers.sms.gateway import HttpGatewayParams
from notifierd.workers.sms.smsru import SmsRuParams
from notifierd.workers.sms.twilio import TwilioParams

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
