"""Helpers for workers that talk to a remote service: a session that reads bounded answers,
reading `Retry-After`, classifying an HTTP status, the secrets of a webhook's URL, and
`HttpWorker`, the base of the workers that post each delivery to one HTTP endpoint."""

from __future__ import annotations

import json
import math
import re
import time
from abc import abstractmethod
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests
import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from notifierd import __version__
from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.workers.base import Worker, hashed_rate_key

log = structlog.get_logger("notifierd.worker.remote")

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


def excerpt(text: str, limit: int = 200) -> str:
    """A one-line start of a remote's answer, for an error message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def connection_failure(what: str, exc: requests.RequestException) -> TemporaryFailure:
    """The temporary failure for a request that got no answer (refused, reset, timed out). Its
    text may hold the URL, and a secret in it: the worker process redacts it."""
    kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
    return TemporaryFailure(f"{what}: request {kind}: {type(exc).__name__}: {excerpt(str(exc))}")


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


# --- Workers that post to one HTTP endpoint ---------------------------------------------------

#: A query only after a path ("https://host/?x", not "https://host?x"), no fragment.
_HTTP_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*(\?[^\s#]*)?)?")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
#: A path segment at least this long is a webhook URL's token, not a word of its path.
MIN_TOKEN_SEGMENT = 16


def is_http_url(value: str, query: bool = True) -> bool:
    """Whether `value` is an http:// or https:// URL (any host: self-hosted servers, proxies,
    a local fake), without a fragment, and without a query unless `query`."""
    match = _HTTP_URL.fullmatch(value)
    return match is not None and (query or match.group(2) is None)


def http_url(value: str, what: str) -> str:
    """`value` if it is an http:// or https:// URL (`is_http_url`), else a `ValueError`
    naming `what`."""
    if not is_http_url(value):
        raise ValueError(f"{what} must be an http:// or https:// URL")
    return value


def plain_http_elsewhere(url: str) -> bool:
    """Whether `url` sends its secrets unencrypted to a host other than this one's loopback."""
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") not in _LOOPBACK


def url_secrets(url: str) -> list[str]:
    """The spellings of a secret URL (a webhook's) that a log line or an answer may show: the
    whole of it, its path and query as an HTTP request line has them, and each long path
    segment or query value, which is where a webhook's token (or signature) sits."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    pieces = parts.path.split("/") + [value for _, value in parse_qsl(parts.query)]
    tokens = [piece for piece in pieces if len(piece) >= MIN_TOKEN_SEGMENT]
    return [url, *([target] if len(target) > 1 else []), *tokens]


class HttpParams(BaseModel):
    """What the params of every `HttpWorker` have."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: Seconds, for connecting and for each read.
    timeout: float = Field(default=10.0, gt=0, le=60)


HP = TypeVar("HP", bound=HttpParams)


class HttpWorker(Worker[HP]):
    """The base of a worker that posts each delivery to one HTTP endpoint with a bounded
    session: it opens the session, warns at start-up about a secret sent over plain http, and
    turns a request that got no answer into a `TemporaryFailure`. A subclass says which URL
    (`endpoint`), and classifies the answer itself."""

    #: How the remote is named in errors and log events ("discord").
    service: ClassVar[str]

    def __init__(self, channel: str, params: HP) -> None:
        super().__init__(channel, params)
        self._session: requests.Session | None = None

    @abstractmethod
    def endpoint(self) -> str:
        """The URL the worker talks to (which may hold a secret)."""

    def timeout(self) -> float:
        return self.params.timeout

    def open(self) -> None:
        self._session = BoundedSession()
        self._session.headers["User-Agent"] = f"notifierd/{__version__}"
        if plain_http_elsewhere(self.endpoint()):
            hint = (
                f"channel {self.channel!r} sends its {self.plain_http_cargo()} over plain "
                "http to another host; use https unless a trusted proxy is on that path"
            )
            log.warning(f"{self.service}.plain_http", channel=self.channel, hint=hint)

    def plain_http_cargo(self) -> str:
        """What the warning about plain http says travels unencrypted."""
        return f"{self.service} secret"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """The remote's answer, whatever its status; a `TemporaryFailure` when there was none
        (refused, reset, timed out, an endless answer). Redirects are not followed: one would
        turn the POST into a GET without the message, and is reported as an answer."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__}.send called before open()")
        timeout = self.timeout()
        try:
            return self._session.request(
                method, url, timeout=(timeout, timeout), allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            failure = self.no_answer(exc)
        # Raised outside the `except`: the requests exception, whose text holds the URL, is
        # neither its cause nor its context.
        raise failure

    def no_answer(self, exc: requests.RequestException) -> DeliveryError:
        """What a request that got no answer means: by default a temporary failure."""
        return connection_failure(self.service, exc)

    def post_json(self, url: str, payload: Any, **kwargs: Any) -> requests.Response:
        """POST `payload` as UTF-8 JSON (not \\u escapes: Cyrillic text is a third the size)."""
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        body = json.dumps(payload, ensure_ascii=False).encode()
        return self.request("POST", url, data=body, headers=headers, **kwargs)


# --- Incoming webhooks (discord, teams, mattermost, rocketchat; slack's optional URL) ----------


def _webhook_url(value: SecretStr) -> SecretStr:
    http_url(value.get_secret_value(), "webhook_url")
    return value


#: An incoming webhook's URL: any http or https URL, and a secret (it holds the webhook's token
#: or signature).
WebhookUrl = Annotated[SecretStr, AfterValidator(_webhook_url)]


class IncomingWebhookParams(HttpParams):
    """What the params of an incoming-webhook destination have."""

    #: The webhook's URL, usually from the environment ("${DISCORD_WEBHOOK_URL}").
    webhook_url: WebhookUrl
    #: Messages per second for the webhook; null: not paced, the service's 429s are kept to.
    rate_per_second: float | None = Field(default=None, gt=0)


WP = TypeVar("WP", bound=IncomingWebhookParams)


class IncomingWebhookWorker(HttpWorker[WP]):
    """The base of a worker that posts to an incoming webhook: the webhook's URL is the
    endpoint and the secret (with its path and token segments, `url_secrets`), and the budget
    its channels share (`rate_key`), paced at `rate_per_second`."""

    @classmethod
    def secrets(cls, params: WP) -> list[str]:
        return url_secrets(params.webhook_url.get_secret_value())

    @classmethod
    def channel_rate(cls, params: WP) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: WP) -> str | None:
        """A service limits a webhook, whichever channel posts to it."""
        return hashed_rate_key(cls.service, params.webhook_url.get_secret_value())

    def endpoint(self) -> str:
        return self.params.webhook_url.get_secret_value()


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """The answer's body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def seconds(value: object) -> float | None:
    """A non-negative number of seconds from a JSON number or a header value, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and not math.isnan(number) else None


def answer_failure(
    text: str, status: int, retry_after: float | None, fix: str
) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
    """What a chat or push service's non-success answer means: 429 a rate limit (after
    `retry_after`, the service's hint), 408 and 5xx temporary, 401/403/404 and redirects a
    misconfigured channel (a bad token, an unknown webhook: `fix` says what to check), other
    4xx a refusal of the message. `text` is the service's error, already made readable."""
    if status == 429:
        return RateLimited(text, retry_after)
    if status == 408 or status >= 500:
        return TemporaryFailure(text)
    if status in (401, 403, 404) or 300 <= status < 400:
        return ChannelMisconfigured(f"{text}: {fix}; deliveries stay queued until it is fixed")
    if 400 <= status < 500:
        return PermanentFailure(text)
    return TemporaryFailure(text)
