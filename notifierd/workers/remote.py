"""Helpers for workers that talk to a remote service: a session that reads bounded answers,
reading `Retry-After`, classifying an HTTP status, and keeping secrets out of the text of
errors."""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from notifierd.errors import ChannelMisconfigured, PermanentFailure, RateLimited, TemporaryFailure
from notifierd.redaction import Redactor

#: The longest answer a remote may give: a notification service's answer is a few kilobytes.
MAX_ANSWER_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class AnswerTooLarge(requests.RequestException):
    """A remote's answer was longer than `MAX_ANSWER_BYTES` (after content decoding)."""


class BoundedSession(requests.Session):
    """A `requests.Session` that reads at most `MAX_ANSWER_BYTES` of an answer and raises
    `AnswerTooLarge` beyond: a broken or hostile remote's endless answer would otherwise be
    held in the worker's memory whole. Being a `RequestException`, it is a temporary failure
    wherever a worker handles a failed request."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["stream"] = True
        response = super().request(*args, **kwargs)
        try:
            body = read_bounded(response, MAX_ANSWER_BYTES)
        finally:
            response.close()
        # What requests itself does once it has read a body: `.content`, `.text` and
        # `.json()` then use it.
        response._content = body
        return response


def read_bounded(response: requests.Response, limit: int) -> bytes:
    """The body of a streamed response, or `AnswerTooLarge` as soon as it passes `limit`."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(
            f"the answer is {int(declared)} bytes long, more than the {limit} accepted"
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(f"the answer is longer than the {limit} bytes accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP-date), or None
    when it is absent or unreadable. Never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every spelling of every secret replaced by `***` (see `Redactor`). The
    worker process redacts each error and log event that leaves it whatever the worker did;
    this is for a worker (or plugin) that wants a text clean where it builds it."""
    return Redactor(secrets).text(text)


def excerpt(text: str, limit: int = 200) -> str:
    """A one-line start of a remote's answer, for an error message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def connection_failure(
    what: str, exc: requests.RequestException, secrets: Iterable[str]
) -> TemporaryFailure:
    """The temporary failure for a request that got no answer (refused, reset, timed out)."""
    kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
    detail = redact(str(exc), secrets)
    return TemporaryFailure(f"{what}: request {kind}: {type(exc).__name__}: {excerpt(detail)}")


def status_failure(
    what: str, response: requests.Response, detail: str
) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
    """The usual meaning of a non-success HTTP status: 429 is a rate limit (with its
    `Retry-After`), 408 and 5xx are temporary, 401/403/407 and redirects mean the channel is
    misconfigured (bad credentials, wrong `base_url`), other 4xx are a refusal of the message."""
    status = response.status_code
    text = f"{what}: HTTP {status}: {detail}" if detail else f"{what}: HTTP {status}"
    if status == 429:
        return RateLimited(text, parse_retry_after(response.headers.get("Retry-After")))
    if status == 408 or status >= 500:
        return TemporaryFailure(text)
    if status in (401, 403, 407) or 300 <= status < 400:
        return ChannelMisconfigured(text)
    if 400 <= status < 500:
        return PermanentFailure(text)
    return TemporaryFailure(text)
