"""The SPEC's validation rules, applied to the fields of a send request.

Control data: *number* (an integer, or digits with an optional leading minus) and *string*
(non-empty, no line breaks). User data: *text*, checked against the channel's pattern. A
required field is an error when missing or empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from notifierd.config import Channel

NUMBER = re.compile(r"-?[0-9]+")
MAX_NUMBER_DIGITS = 18  # beyond any sane delay, and safe for int() on hostile input


class FieldError(Exception):
    """A 422: `code` is snake_case, `description` a sentence for a person."""

    def __init__(self, code: str, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.field = field


class SendRequest(NamedTuple):  # one per request: cheaper to make than a frozen dataclass
    message: str
    delay: int
    #: (key, digest) of an idempotent send (`api.idempotency`), or None.
    idempotency: tuple[str, str] | None = None


def pick(body: Mapping[str, Any], query: Mapping[str, Any], name: str) -> Any:
    """The field from the body when the body has it, else from the query (SPEC)."""
    if name in body:
        return body[name]
    return query.get(name)


def required_text(value: Any, field: str) -> str:
    if value is None or value == "":
        raise FieldError("required", f"{field} is required", field)
    if not isinstance(value, str):
        raise FieldError("invalid_type", f"{field} must be a string", field)
    if not value.strip():
        raise FieldError("required", f"{field} must not be blank", field)
    return value


def number(value: Any, field: str) -> int:
    """SPEC *number*: an integer, or a string of digits with an optional leading minus."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError("invalid_number", f"{field} must be a whole number", field)
    if isinstance(value, int):
        return value
    if NUMBER.fullmatch(value) is None:
        raise FieldError(
            "invalid_number",
            f"{field} must be a whole number of digits with an optional leading minus",
            field,
        )
    if len(value.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise FieldError("out_of_range", f"{field} is too large", field)
    return int(value)


def control_string(value: Any, field: str) -> str:
    """SPEC *string*: non-empty, without line breaks or carriage returns."""
    if value is None or value == "":
        raise FieldError("required", f"{field} is required", field)
    if not isinstance(value, str):
        raise FieldError("invalid_type", f"{field} must be a string", field)
    if "\n" in value or "\r" in value:
        raise FieldError("invalid_string", f"{field} must be a single line", field)
    return value


def validate_send(
    body: Mapping[str, Any], query: Mapping[str, Any], channel: Channel, max_delay: int
) -> SendRequest:
    """Check a send request against the SPEC's rules and the channel. Raises `FieldError`."""
    message = required_text(pick(body, query, "message"), "message")
    reason = channel.check_message(message)
    if reason is not None:
        raise FieldError("message_rejected", reason, "message")
    raw_delay = pick(body, query, "delay")
    delay = 0 if raw_delay is None or raw_delay == "" else number(raw_delay, "delay")
    if delay < 0:
        raise FieldError("out_of_range", "delay must be 0 or more seconds", "delay")
    if delay > max_delay:
        raise FieldError("out_of_range", f"delay must be at most {max_delay} seconds", "delay")
    if delay >= channel.ttl:
        raise FieldError(
            "out_of_range",
            f"delay must be shorter than the channel's time-to-live ({channel.ttl} seconds)",
            "delay",
        )
    return SendRequest(message=message, delay=delay)
