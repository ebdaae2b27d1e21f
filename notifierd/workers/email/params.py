"""The `params` of an `email` channel (described in the package's docstring)."""

from __future__ import annotations

import re
import string
from email.utils import parseaddr
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    field_validator,
    model_validator,
)

from notifierd.workers.base import repeated

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
SUBJECT_PLACEHOLDERS = frozenset({"channel", "first_line"})
_ATOM = r"[^@\s<>(),;:\"\[\]\\]+"
ADDRESS = re.compile(rf"{_ATOM}@{_ATOM}")


def _check_address(value: str) -> str:
    if ADDRESS.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not an email address (local-part@domain)")
    return value


def _check_mailbox(value: str) -> str:
    """An address, optionally with a display name: `Name <local@domain>`."""
    if "\n" in value or "\r" in value:
        raise ValueError("the sender must be on one line")
    _, address = parseaddr(value)
    if not address or ADDRESS.fullmatch(address) is None:
        raise ValueError(f"{value!r} is not an address or 'Name <address>'")
    return value


Address = Annotated[str, AfterValidator(_check_address)]
Mailbox = Annotated[str, AfterValidator(_check_mailbox)]


class EmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    sender: Mailbox
    to: list[Address] = Field(min_length=1)
    subject: str = "[{channel}] {first_line}"
    timeout: float = Field(default=30.0, gt=0, le=600)
    ca_file: FilePath | None = None
    tls_verify: bool = Field(default=True, description="false: accept any certificate")

    @field_validator("to")
    @classmethod
    def _distinct(cls, addresses: list[str]) -> list[str]:
        twice = repeated(addresses, key=str.lower)
        if twice is not None:
            raise ValueError(f"address {twice!r} is listed twice")
        return addresses

    @field_validator("subject")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(template)]
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc} (write {{{{ for a brace)") from None
        unknown = {field for field in fields if field is not None} - SUBJECT_PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; "
                "the subject may use {channel} and {first_line}"
            )
        return template

    @model_validator(mode="after")
    def _login_complete(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both `username` and `password`, or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]
