"""The `webhook` worker: sends each delivery to any HTTP endpoint, as the channel describes
the request: `method` and `url`, `headers`, basic (`username`, `password`) or bearer
(`token`) authentication, a `body` template in `json`, `form` or `text` (`webhook_body`),
which answers mean success, and TLS options (`tls_verify`, `ca_file`, `client_cert`).

How answers are classified:

- a status in `success_status` (any 2xx by default), and, with `success_field`, that field of
  the JSON answer equal to `success_value` (`true` by default): delivered;
- another 2xx, or a success status whose answer fails the field check: the endpoint refused
  the message (FAILED, with its answer);
- 429: a rate limit after its `Retry-After` (no attempt charged), shared by the channels that
  post to the same host with the same credentials (`rate_key`);
- connection failures, timeouts, 408, 5xx: temporary;
- 401, 403, 404, 407, redirects, a server certificate not trusted, and a TLS alert that
  refuses the client's certificate: misconfigured, deliveries wait until it is fixed (a server
  that just hangs up on a missing client certificate is a temporary failure);
- other 4xx: refused, FAILED with the endpoint's answer.

Secrets: `token`, `password`, the values of headers whose name says they hold a credential
(`Authorization`, `Cookie`, `X-Api-Key`, anything with token, secret, key, pass, auth, sig),
and a URL that carries credentials or a token (`user:pass@`, a path segment or query value
as long as a token, any value of a query parameter named like a credential) are kept out of
every error and log line. A short token in a URL's path cannot be told from a word of it: give
it as `token` or in a header.
"""

from __future__ import annotations

import json
import re
import warnings
from base64 import b64encode
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qsl, urlsplit

import requests
import structlog
from pydantic import (
    BaseModel,
    Field,
    FilePath,
    JsonValue,
    SecretStr,
    field_validator,
    model_validator,
)
from urllib3.exceptions import InsecureRequestWarning

from notifierd.errors import ChannelMisconfigured, DeliveryError, PermanentFailure
from notifierd.messages import Delivery
from notifierd.redaction import secret_values
from notifierd.workers.base import hashed_rate_key, repeated
from notifierd.workers.remote import (
    MIN_TOKEN_SEGMENT,
    HttpParams,
    HttpWorker,
    answer_failure,
    excerpt,
    http_url,
    json_object,
    parse_retry_after,
    url_secrets,
)
from notifierd.workers.webhook_body import (
    CONTENT_TYPES,
    DEFAULT_BODIES,
    SAMPLE,
    BodyError,
    BodyFormat,
    BodyTemplate,
    fill_url,
    is_jinja,
    url_names,
)

log = structlog.get_logger("notifierd.worker.webhook")

Method = Literal["POST", "PUT", "PATCH", "GET", "DELETE"]
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: A header or query parameter whose name says its value is a credential.
CREDENTIAL_NAME = re.compile(r"auth|token|secret|key|pass|sig|cookie|session|credential", re.I)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers the worker writes itself.
_OWN_HEADERS = frozenset({"content-length", "host", "transfer-encoding"})
#: TLS errors (OpenSSL's reason, and the alert a server sends) that mean a certificate is
#: wrong, which no retry changes.
_CERTIFICATE_TROUBLE = re.compile(
    r"\[SSL: CERTIFICATE_VERIFY_FAILED\][^'\"(]*|"
    r"\[SSL: [A-Z0-9_]*(CERTIFICATE_REQUIRED|UNKNOWN_CA|BAD_CERTIFICATE)\][^'\"(]*"
)


class WebhookParams(HttpParams):
    """The `params` of a `webhook` channel."""

    url: str
    method: Method = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    #: Bearer authentication (`Authorization: Bearer <token>`) ...
    token: SecretStr | None = None
    #: ... or HTTP Basic.
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    #: The body template (see `webhook_body`); none: channel, recipient and message.
    body: str | None = None
    content_type: BodyFormat = "json"
    #: The statuses that mean delivered; empty: any 2xx.
    success_status: tuple[int, ...] = ()
    #: A field of the JSON answer (`ok`, `result.status`) that must equal `success_value`.
    success_field: str | None = Field(default=None, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
    success_value: JsonValue = True
    tls_verify: bool = True
    ca_file: FilePath | None = None
    #: A client certificate (PEM), and its key when the file does not hold it too.
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    #: One delivery per recipient (`{recipient}` in the templates); none: one per message.
    recipients: tuple[str, ...] = ()
    #: The longest message accepted, in characters; none: only the server's max_body_size.
    max_length: int | None = Field(default=None, ge=1)
    #: Messages per second; null (the default): not paced, the endpoint's 429s are kept to.
    rate_per_second: float | None = Field(default=None, gt=0)

    @field_validator("method", mode="before")
    @classmethod
    def _method_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        http_url(value, "url")
        if is_jinja(value) or "{" in (urlsplit(value).netloc or ""):
            raise ValueError(
                "url takes {message}-style placeholders in its path and query only, "
                "not a Jinja2 template"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if name.lower() in _OWN_HEADERS:
                raise ValueError(f"header {name!r} is set by the worker itself; remove it")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r}: a value cannot hold a line break")
        twice = repeated(headers, key=str.lower)
        if twice is not None:
            raise ValueError(f"header {twice!r} is listed twice (names ignore case)")
        return headers

    @field_validator("success_status")
    @classmethod
    def _statuses(cls, statuses: tuple[int, ...]) -> tuple[int, ...]:
        wrong = [status for status in statuses if not 100 <= status <= 599]
        if wrong:
            raise ValueError(f"{wrong[0]} is not an HTTP status (100 to 599)")
        return statuses

    @field_validator("recipients")
    @classmethod
    def _distinct(cls, recipients: tuple[str, ...]) -> tuple[str, ...]:
        twice = repeated(recipients)
        if twice is not None:
            raise ValueError(f"recipient {twice!r} is listed twice; it would get each twice")
        return recipients

    @model_validator(mode="after")
    def _credentials_once(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (HTTP Basic)")
        given = [
            name
            for name, present in [
                ("token", self.token is not None),
                ("username and password", self.username is not None),
                ("an Authorization header", "authorization" in map(str.lower, self.headers)),
                ("credentials in the url", bool(urlsplit(self.url).password)),
            ]
            if present
        ]
        if len(given) > 1:
            raise ValueError(f"give one way to authenticate, not {' and '.join(given)}")
        return self

    @model_validator(mode="after")
    def _tls(self) -> Self:
        if self.ca_file is not None and not self.tls_verify:
            raise ValueError("ca_file is not used with tls_verify: false; remove one")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self

    @model_validator(mode="after")
    def _templates(self) -> Self:
        if self.success_field is None and "success_value" in self.model_fields_set:
            raise ValueError("success_value needs success_field (the field it is compared to)")
        if self.body is not None and self.method not in WITH_BODY:
            raise ValueError(f"a {self.method} request has no body: use POST, PUT or PATCH")
        try:
            template = self.template()
        except BodyError as exc:
            raise ValueError(f"body: {exc}") from None
        used = url_names(self.url) | (set() if template is None else template.names)
        unknown = used - set(SAMPLE)
        if unknown:
            raise ValueError(f"body: unknown names {sorted(unknown)}; known: {', '.join(SAMPLE)}")
        if "message" not in used:
            where = "the url or the body" if self.method in WITH_BODY else "the url"
            raise ValueError(f"{where} must use the message ({{message}} or {{{{ message }}}})")
        if template is not None:
            try:
                template.render(SAMPLE)
            except BodyError as exc:
                raise ValueError(f"body: {exc}") from None
        return self

    def template(self) -> BodyTemplate | None:
        """The body's template (the default one when `body` is not given), or None for a
        request without a body."""
        if self.method not in WITH_BODY:
            return None
        return BodyTemplate(self.body or DEFAULT_BODIES[self.content_type], self.content_type)

    def secret_headers(self) -> dict[str, str]:
        return {name: value for name, value in self.headers.items() if CREDENTIAL_NAME.search(name)}


def webhook_url_secrets(url: str) -> list[str]:
    """What of `url` is a secret: the password of `user:password@`, every value of a query
    parameter named like a credential, and, when it has either or a token (a path segment or
    query value as long as one), all of it with its path and long pieces (`url_secrets`). A
    URL without any of these is no secret: `/notify` stays readable in the logs."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    found = [value for name, value in query if value and CREDENTIAL_NAME.search(name)]
    if parts.password:
        found += [parts.password, f"{parts.username}:{parts.password}"]
    pieces = parts.path.split("/") + [value for _, value in query]
    if found or any(len(piece) >= MIN_TOKEN_SEGMENT for piece in pieces):
        found += url_secrets(url)
    return found


class WebhookWorker(HttpWorker[WebhookParams]):
    """Sends deliveries to an HTTP endpoint, as the channel describes the request."""

    Params: ClassVar[type[BaseModel]] = WebhookParams
    max_length: ClassVar[int | None] = None
    service: ClassVar[str] = "webhook"

    def __init__(self, channel: str, params: WebhookParams) -> None:
        super().__init__(channel, params)
        self._template = params.template()
        # Given with each request: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
        self._tls: dict[str, Any] = {
            "verify": str(params.ca_file) if params.ca_file else params.tls_verify
        }
        if params.client_key is not None:
            self._tls["cert"] = (str(params.client_cert), str(params.client_key))
        elif params.client_cert is not None:
            self._tls["cert"] = str(params.client_cert)

    @classmethod
    def length_limit(cls, params: WebhookParams) -> int | None:
        return params.max_length

    @classmethod
    def recipients(cls, params: WebhookParams) -> list[str]:
        return list(params.recipients) or [""]

    @classmethod
    def secrets(cls, params: WebhookParams) -> list[str]:
        found = secret_values(params) + webhook_url_secrets(params.url)
        for value in params.secret_headers().values():
            # "Bearer abc": the credential alone may be quoted back too.
            found += [value, value.split(maxsplit=1)[-1]]
        return found

    @classmethod
    def channel_rate(cls, params: WebhookParams) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: WebhookParams) -> str | None:
        """An endpoint limits a client: the channels that post to one host (and port) with
        the same credentials share its budget."""
        parts = urlsplit(params.url)
        host = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
        login = [params.username or "", *secret_values(params), parts.username or ""]
        login += [parts.password or "", *params.secret_headers().values()]
        return hashed_rate_key("webhook", json.dumps([host, *login]))

    def endpoint(self) -> str:
        return self.params.url

    def plain_http_cargo(self) -> str:
        credentials = self.params.token or self.params.password or self.params.secret_headers()
        return "messages and credentials" if credentials else "messages"

    def open(self) -> None:
        super().open()
        assert self._session is not None
        params = self.params
        if params.token is not None:
            self._session.headers["Authorization"] = f"Bearer {params.token.get_secret_value()}"
        elif params.username is not None and params.password is not None:
            # UTF-8 (RFC 7617), where requests' own HTTP Basic encodes Latin-1 and fails on
            # any other letter.
            login = f"{params.username}:{params.password.get_secret_value()}".encode()
            self._session.headers["Authorization"] = f"Basic {b64encode(login).decode()}"
        if not params.tls_verify and urlsplit(params.url).scheme == "https":
            log.warning(
                "webhook.tls_unverified",
                channel=self.channel,
                hint=f"channel {self.channel!r} has tls_verify: false: the server's "
                "certificate is not checked, anyone on the path can read and change its "
                "requests; set ca_file to the CA that signed it instead",
            )

    def send(self, delivery: Delivery) -> None:
        values: dict[str, str | int] = {
            "message": delivery.message,
            "recipient": delivery.recipient,
            "channel": delivery.channel,
            "delivery_id": delivery.id,
            "attempt": delivery.attempt,
        }
        params = self.params
        headers = dict(params.headers)
        data: bytes | None = None
        if self._template is not None:
            try:
                data = self._template.render(values).encode()
            except BodyError as exc:
                raise PermanentFailure(f"webhook: {exc}") from None
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = CONTENT_TYPES[self._template.format]
        with warnings.catch_warnings():
            # tls_verify: false was asked for, and said at start-up; not once per request.
            warnings.simplefilter("ignore", InsecureRequestWarning)
            url = fill_url(params.url, values)
            response = self.request(params.method, url, data=data, headers=headers, **self._tls)
        failure = self._failure(response)
        if failure is not None:
            raise failure

    def no_answer(self, exc: requests.RequestException) -> DeliveryError:
        """A certificate the TLS handshake failed on is the channel's to fix: no retry
        changes it. Anything else is a temporary failure."""
        found = _CERTIFICATE_TROUBLE.search(str(exc))
        if not isinstance(exc, requests.exceptions.SSLError) or found is None:
            return super().no_answer(exc)
        return ChannelMisconfigured(
            f"webhook: the TLS handshake failed: {found.group(0).strip()}: set params.ca_file "
            f"of channel {self.channel!r} to the CA that signed the server's certificate (or "
            "client_cert to one the server accepts); deliveries stay queued until it is fixed"
        )

    def _failure(self, response: requests.Response) -> DeliveryError | None:
        """None when the answer means delivered, else what it means."""
        params, status = self.params, response.status_code
        answer = excerpt(response.text) or "no answer text"
        if status in params.success_status or (not params.success_status and status < 300):
            if params.success_field is None or _field_matches(response, params):
                return None
            return PermanentFailure(
                f"webhook: HTTP {status} but {params.success_field} is not "
                f"{json.dumps(params.success_value, ensure_ascii=False)}: {answer}"
            )
        if 200 <= status < 300:
            return PermanentFailure(f"webhook: HTTP {status} is not a success answer: {answer}")
        return answer_failure(
            f"webhook: HTTP {status}: {answer}",
            401 if status == 407 else status,
            parse_retry_after(response.headers.get("Retry-After")),
            f"check params.url and the credentials of channel {self.channel!r}",
        )


def _field_matches(response: requests.Response, params: WebhookParams) -> bool:
    """Whether the answer's JSON has `success_field` (a dotted path) equal to
    `success_value`, compared as JSON (1 is not true)."""
    found: Any = json_object(response)
    for key in (params.success_field or "").split("."):
        if not isinstance(found, dict) or key not in found:
            return False
        found = found[key]
    return json.dumps(found, sort_keys=True) == json.dumps(params.success_value, sort_keys=True)
