"""The `matrix` worker: sends each delivery as an `m.room.message` to one room through the
client-server API, `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with
the user's access token.

The transaction id is derived from the delivery (its channel, id, acceptance time and text), so
every try of one delivery, in any worker process and after a restart, uses the same one: a
homeserver that stored the event before the connection broke answers the retry with the same
event instead of posting it twice (the spec makes a `txnId` idempotent per device).

The text goes as the `body` of an `m.text` (or, with `msgtype: notice`, an `m.notice`, which
clients and bots treat as not to be answered): plain text, shown as written. An event may be
65,536 bytes of JSON with its envelope and signatures; the body may take 60,000 of them,
counted as the homeserver does, in UTF-8 with JSON's escapes.

How answers are classified (`{"errcode", "error"}`):

- 200: delivered;
- 429 `M_LIMIT_EXCEEDED`: a rate limit after `retry_after_ms`, else `Retry-After`;
- connection failures, timeouts, 408, 5xx: temporary;
- 401 `M_UNKNOWN_TOKEN`/`M_MISSING_TOKEN`, 403 `M_FORBIDDEN` (not in the room), 404
  (unknown room, or no Matrix API at `homeserver`): misconfigured;
- other 4xx (`M_TOO_LARGE`, `M_BAD_JSON`): refused with the homeserver's error.

Synapse lets a user send about one message per 5 s after a burst of 10 (`rc_message`), and
homeservers differ: a channel is not paced unless `rate_per_second` says so, and keeps to the
homeserver's 429s, shared by channels of one user (`rate_key`).
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import BaseModel, Field, SecretStr, field_validator

from notifierd.errors import ChannelMisconfigured, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import hashed_rate_key
from notifierd.workers.message_text import too_long
from notifierd.workers.remote import (
    HttpParams,
    HttpWorker,
    answer_failure,
    excerpt,
    http_url,
    json_object,
    parse_retry_after,
    seconds,
)

#: The bytes of JSON a message's body may take in an event of at most 65,536.
BODY_BYTES = 60_000


def transaction_id(delivery: Delivery) -> str:
    """The same for every try of one delivery, and different for any other delivery, also
    of a new database whose ids start again."""
    identity = json.dumps(
        [delivery.channel, delivery.id, delivery.created_at, delivery.recipient, delivery.message]
    )
    return "notifierd-" + hashlib.sha256(identity.encode()).hexdigest()[:32]


class MatrixParams(HttpParams):
    """The `params` of a `matrix` channel."""

    #: The homeserver's client-server API base, e.g. https://matrix.example.org.
    homeserver: str
    #: The sending user's access token, usually "${MATRIX_ACCESS_TOKEN}".
    access_token: SecretStr = Field(min_length=1)
    #: The room's id (`!abcdefg:example.org`, in room version 12 without the server; Room
    #: settings, Advanced), which the user has joined.
    room_id: str = Field(pattern=r"^!\S+$")
    #: `text` (m.text) or `notice` (m.notice, for bots).
    msgtype: Literal["text", "notice"] = "text"
    #: Messages per second; null (the default): not paced, the homeserver's 429s are kept to.
    rate_per_second: float | None = Field(default=None, gt=0)

    @field_validator("homeserver")
    @classmethod
    def _homeserver(cls, value: str) -> str:
        return http_url(value, "homeserver").rstrip("/")


class MatrixWorker(HttpWorker[MatrixParams]):
    """Sends deliveries to a Matrix room."""

    Params: ClassVar[type[BaseModel]] = MatrixParams
    max_length: ClassVar[int] = BODY_BYTES
    service: ClassVar[str] = "matrix"

    @classmethod
    def check_message(cls, params: MatrixParams, message: str) -> str | None:
        size = len(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2
        if size > BODY_BYTES:
            return too_long(size, BODY_BYTES, "bytes of JSON")
        return None

    @classmethod
    def channel_rate(cls, params: MatrixParams) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: MatrixParams) -> str | None:
        """A homeserver limits a user, whichever room it writes to."""
        token = params.access_token.get_secret_value()
        return hashed_rate_key("matrix", f"{params.homeserver} {token}")

    def endpoint(self) -> str:
        room = quote(self.params.room_id, safe="")
        return f"{self.params.homeserver}/_matrix/client/v3/rooms/{room}/send/m.room.message"

    def send(self, delivery: Delivery) -> None:
        params = self.params
        content = {"msgtype": f"m.{params.msgtype}", "body": delivery.message}
        response = self.request(
            "PUT",
            f"{self.endpoint()}/{transaction_id(delivery)}",
            data=json.dumps(content, ensure_ascii=False).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {params.access_token.get_secret_value()}",
            },
        )
        if 200 <= response.status_code < 300:
            return
        raise self._failure(response)

    def _failure(
        self, response: requests.Response
    ) -> TemporaryFailure | PermanentFailure | ChannelMisconfigured:
        status = response.status_code
        body = json_object(response) or {}
        errcode, error = body.get("errcode"), body.get("error")
        if isinstance(errcode, str):
            detail = f"{errcode}: {error}" if isinstance(error, str) else errcode
        else:
            detail = excerpt(response.text) or "no error text"
        milliseconds = seconds(body.get("retry_after_ms"))
        retry_after = (
            milliseconds / 1000
            if milliseconds is not None
            else parse_retry_after(response.headers.get("Retry-After"))
        )
        return answer_failure(
            f"matrix: HTTP {status}: {detail}",
            429 if errcode == "M_LIMIT_EXCEEDED" else status,
            retry_after,
            f"check params.homeserver, access_token and room_id of channel {self.channel!r} "
            "(the user must have joined the room)",
        )
