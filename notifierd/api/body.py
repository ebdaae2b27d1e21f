"""Reading the fields of a request: form-urlencoded, multipart or JSON body, and the query.

Every text is decoded as strict UTF-8; a field given twice is an error rather than a guess.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import query_to_pairs

from notifierd.api.validation import FieldError

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"
MAX_JSON_DEPTH = 32  # the send body is one flat object; nothing legitimate nests deeper
REPLACEMENT = "\ufffd"  # what yarl's decoder puts for an escape that is not UTF-8
#: Content-Type values that need no parsing: a form, in UTF-8 or with no charset.
PLAIN_FORM_TYPES = frozenset(
    {FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=UTF-8", f"{FORM};charset=utf-8"}
)


class BodyError(Exception):
    """A request that cannot be read: `status` is 400, 413 or 415; 422s are `FieldError`s."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


def parse_query(raw: str) -> dict[str, str]:
    if not raw:
        return {}  # the usual case
    return _unique(_decode_pairs(raw, "query"), "query")


async def read_body(request: web.Request, max_size: int) -> dict[str, Any]:
    """The body's fields. Raises `BodyError` (400, 413, 415) or `FieldError` (422)."""
    try:
        return await _read_fields(request, max_size)
    except web.RequestPayloadError as exc:
        # A body that does not decode as its Content-Encoding says, or broken chunks.
        raise BodyError(400, "invalid_body", f"the body cannot be read: {_cause(exc)}") from None


async def _read_fields(request: web.Request, max_size: int) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > max_size:
        raise _too_large(max_size)
    declared = request.headers.get("Content-Type")
    if declared in PLAIN_FORM_TYPES:
        # What nearly every client sends is known without taking the header apart: aiohttp's
        # properties do that at each question, on every request (docs/performance.md).
        media = FORM
    else:
        media = request.content_type
        charset = request.charset
        if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise BodyError(
                415, "unsupported_charset", f"charset {charset} is not supported; use UTF-8"
            )
        if media == MULTIPART:
            return await _read_multipart(request, max_size)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_size) from None
    if not raw:
        return {}
    if declared is None:
        raise BodyError(
            415,
            "unsupported_media_type",
            f"a body needs a Content-Type: {FORM}, {MULTIPART} or {JSON}",
        )
    if media == FORM:
        return _unique(_decode_pairs(_utf8(raw, "body"), "body"), "body")
    if media == JSON:
        return _json_object(raw)
    raise BodyError(
        415,
        "unsupported_media_type",
        f"Content-Type {media} is not supported; use {FORM}, {MULTIPART} or {JSON}",
    )


async def _read_multipart(request: web.Request, max_size: int) -> dict[str, Any]:
    pairs: list[tuple[str, str]] = []
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue  # nested multiparts and nameless parts carry no field
            data = await part.read(decode=True)
            total += len(data)
            if total > max_size:
                raise _too_large(max_size)
            pairs.append((part.name, _utf8(bytes(data), part.name)))
    except (ValueError, AssertionError) as exc:
        raise FieldError("invalid_body", f"the multipart body cannot be read: {exc}") from None
    except HttpProcessingError:
        # aiohttp's own error for a part whose headers are not HTTP (its text quotes them raw).
        raise FieldError(
            "invalid_body", "the multipart body cannot be read: a part has malformed headers"
        ) from None
    return _unique(pairs, "body")


def _json_object(raw: bytes) -> dict[str, Any]:
    text = _utf8(raw, "body")
    try:
        document = json.loads(text, object_pairs_hook=_unique_object)
    except FieldError:
        raise
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise FieldError("invalid_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # nested deeper than the interpreter's stack allows
        raise _too_deep() from None
    if not isinstance(document, dict):
        raise FieldError("invalid_json", "the JSON body must be an object")
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise _too_deep()
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (without recursion)."""
    level: list[Any] = [document]
    for _ in range(limit):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _too_deep() -> BodyError:
    return BodyError(
        400, "json_too_deep", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
    )


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return _unique(pairs, "body")


def _decode_pairs(text: str, where: str) -> list[tuple[str, str]]:
    """The name/value pairs of a form-urlencoded text, percent-escapes decoded as strict UTF-8.

    yarl's decoder (the one aiohttp's own `request.post()` uses, in C) reads every form; it
    puts U+FFFD where an escape is not UTF-8, so a result holding U+FFFD (rare: a broken
    escape, or that character sent on purpose) is read again by the standard library's
    strict decoder, which tells the two apart. The standard library's decoder is written in
    Python: alone, it would be a large share of every request's CPU (docs/performance.md)."""
    pairs = query_to_pairs(text)
    for name, value in pairs:
        if REPLACEMENT in name or REPLACEMENT in value:
            break
    else:
        return pairs
    try:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise FieldError("invalid_encoding", f"the {where} is not valid UTF-8") from None


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError("invalid_encoding", f"the {where} is not valid UTF-8") from None


def _unique(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise FieldError(
                "duplicate_field", f"{name} is given more than once in the {where}", name
            )
        fields[name] = value
    return fields


def _cause(exc: BaseException) -> str:
    """What aiohttp says of a payload error, on one line ("Can not decode content-encoding...")."""
    cause = exc.__cause__ or exc.__context__ or exc
    text = getattr(cause, "message", None) or str(cause)  # HttpProcessingError's own words
    return " ".join(str(text).split()) or type(cause).__name__


def _too_large(max_size: int) -> BodyError:
    return BodyError(413, "body_too_large", f"the body is larger than {max_size} bytes")
