"""What the parameters of every SMS provider share: the phones, the sender, the parts."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from notifierd.workers.base import repeated
from notifierd.workers.remote import is_http_url

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
#: The most parts a channel may allow: Twilio takes up to 1600 characters, 10 GSM-7 parts.
MAX_PARTS_LIMIT = 10


def _check_e164(phone: str) -> str:
    if E164.fullmatch(phone) is None:
        raise ValueError(
            f"phone number {phone!r} is not in E.164 form: '+' then 8 to 15 digits, the "
            "first not 0, no spaces or dashes (for example +79251234567)"
        )
    return phone


def _check_base_url(url: str) -> str:
    if not is_http_url(url, query=False):
        raise ValueError(f"{url!r} is not an http:// or https:// URL without query or fragment")
    return url.rstrip("/")


Phone = Annotated[str, AfterValidator(_check_e164)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]


class SmsParamsBase(BaseModel):
    """What every provider shares. `phones` get one delivery each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phones: list[Phone] = Field(min_length=1)
    sender: str | None = Field(default=None, min_length=1, description="sender name or number")
    max_parts: int = Field(default=6, ge=1, le=MAX_PARTS_LIMIT)
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds, per request")

    @field_validator("phones")
    @classmethod
    def _distinct(cls, phones: list[str]) -> list[str]:
        twice = repeated(phones)
        if twice is not None:
            raise ValueError(f"phone number {twice!r} is listed twice")
        return phones
