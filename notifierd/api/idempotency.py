"""Idempotent sends: a client that retries after a timeout names its request with a key, and
the same key on the same channel gets the job the first request made instead of a second one.

The key comes from the `Idempotency-Key` header or from an `idempotency_key` field (body first,
then query, as every field: SPEC). The Store keeps it with the job, in the same transaction and
under a unique index on (channel, key), together with a digest of what was asked; the same key
with another message or delay is a conflict (409), never a silent second job or a silent drop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from notifierd.api.validation import FieldError, SendRequest, pick

HEADER = "Idempotency-Key"
FIELD = "idempotency_key"
MAX_LENGTH = 255
#: Printable ASCII, space included (as HTTP header values and the IETF draft allow).
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def request_key(
    headers: Mapping[str, str], body: Mapping[str, Any], query: Mapping[str, Any]
) -> str | None:
    """The request's idempotency key, or None. Raises `FieldError` for a key that is not
    1..255 printable ASCII characters, or for a header and a field that disagree."""
    header = headers.get(HEADER)
    field = pick(body, query, FIELD)
    if field is None or field == "":
        field = None
    elif not isinstance(field, str):
        raise FieldError("invalid_type", f"{FIELD} must be a string", FIELD)
    if header is not None and field is not None and header != field:
        raise FieldError(
            "conflicting_idempotency_key",
            f"the {HEADER} header and the {FIELD} field differ; give one of them",
            FIELD,
        )
    key = header if header is not None else field
    if key is None:
        return None
    if len(key) > MAX_LENGTH or _PRINTABLE.fullmatch(key) is None:
        raise FieldError(
            "invalid_idempotency_key",
            f"{FIELD} must be 1 to {MAX_LENGTH} printable ASCII characters",
            FIELD,
        )
    return key


def request_digest(message: str, delay: int) -> str:
    """What identifies the request a key was first used with: a reuse must match it."""
    return hashlib.sha256(f"{delay}\0{message}".encode("utf-8", "surrogatepass")).hexdigest()


def with_key(
    send_request: SendRequest,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    query: Mapping[str, Any],
) -> SendRequest:
    """`send_request` with the request's idempotency key, if it has one (see `request_key`)."""
    key = request_key(headers, body, query)
    if key is None:
        return send_request
    return send_request._replace(
        idempotency=(key, request_digest(send_request.message, send_request.delay))
    )
