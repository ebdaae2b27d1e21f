"""The `telegram` worker: sends each delivery as a Bot API `sendMessage` to one chat.

A channel lists one chat or several (`chat_id`); a job fans out into one delivery per chat, and
`send` gets the chat id as `delivery.recipient`. The dispatcher paces deliveries with
`channel_rate` and `recipient_interval`, which default to Telegram's published limits (about
30 messages/s per bot, 1/s per chat, 20/min per group) so that the channel does not collect 429s.

How answers are classified (PTB and the Bot API server agree, see provider-protocols.md §1):

- `parameters.migrate_to_chat_id` (a group became a supergroup): resend to the new id at once,
  and warn the operator to update `chat_id`;
- 429 / `parameters.retry_after`: `RateLimited` with exactly that `retry_after`;
- connection errors, timeouts, 5xx, a body that is not the Bot API's JSON: `TemporaryFailure`;
- 401, and a JSON 404 (a bad token): `ChannelMisconfigured`, saying what to fix;
- 400, 403 and other 4xx: `PermanentFailure` with Telegram's description.

A channel's `format` says how its text is meant: `text` goes without `parse_mode`; `html` and
`markdownv2` are checked at intake by Telegram's rules (`telegram_markup`) and measured after
parsing. Should Telegram answer "can't parse entities" all the same, the message goes once more
as its plain text, without `parse_mode`, and a warning is logged: never a failure for
formatting alone.

Long text (`split_long: true`) goes out as several messages, in order; the delivery is done when
all of them are. A retry cannot be told which parts went out (the delivery carries no state), so
this process remembers, per delivery, how many parts Telegram accepted and a retry that lands in
the same process resumes after them; a retry handled by another process (or after a restart)
sends every part again. That is the at-least-once promise of DESIGN §2, applied per part.
The parts keep to the chat's pace, and so does this process's next message to the chat, which
the dispatcher (counting one message per delivery) would hand out too early after a split one.

The bot token is in every request URL. The worker process removes it from every error and log
event it passes on (`notifierd.redaction`), and urllib3's debug lines, which carry the URL, do
not leave it; this module still raises its exceptions from scratch, never chained to the
requests exception, so that a traceback does not hold the URL either.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from typing import Any, ClassVar, NamedTuple
from urllib.parse import quote

import requests
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from notifierd import __version__
from notifierd.errors import (
    ChannelMisconfigured,
    DeliveryError,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.messages import Delivery
from notifierd.workers.base import Worker, hashed_rate_key, repeated
from notifierd.workers.remote import BoundedSession, is_http_url, seconds
from notifierd.workers.telegram_markup import (
    TEXT_LIMIT,
    Format,
    MarkupError,
    Parsed,
    parse,
    render,
    split,
    split_spans,
)

log = structlog.get_logger("notifierd.worker.telegram")

#: The Bot API's cap on the text of one request as sent, markup included (provider-protocols
#: §1: 32 KiB); the limit that matters is TEXT_LIMIT, on the text after parsing.
RAW_TEXT_LIMIT = 32 * 1024
#: The `parse_mode` Telegram is sent for each `format`.
PARSE_MODES: dict[Format, str] = {"html": "HTML", "markdownv2": "MarkdownV2"}
#: How many times one part may be re-targeted by `migrate_to_chat_id` before giving up; one is
#: what happens in practice, more means the server is confused.
MAX_MIGRATIONS = 3
#: Deliveries whose partial progress a worker process remembers (see the module docstring).
PROGRESS_MEMORY = 1024
_USERNAME = re.compile(r"@[A-Za-z0-9_]+")
_INTEGER = re.compile(r"-?[0-9]+")

ChatId = int | str
_PARSE_MODE_FORMATS: dict[str, Format] = {"html": "html", "markdownv2": "markdownv2"}


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Plain `text` cut into parts of at most `limit` UTF-16 units (see `split_spans`)."""
    return [text[start:end] for start, end in split_spans(text, limit)]


def _parse_chat_id(value: object, where: str) -> ChatId:
    # bool is an int subclass: `chat_id: yes` must not become chat 1.
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        return value
    if isinstance(value, str):
        value = value.strip()
        if _INTEGER.fullmatch(value) and int(value) != 0:
            return int(value)  # an id that came through an environment variable as text
        if _USERNAME.fullmatch(value):
            return value
    raise ValueError(
        f"{where} must be a non-zero integer chat id (e.g. -1001234567890) or a public "
        f"channel username starting with '@' (e.g. '@mychannel'), got {value!r}"
    )


class TelegramParams(BaseModel):
    """The `params` of a `telegram` channel."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: The bot token from @BotFather, usually "${TELEGRAM_BOT_TOKEN}".
    token: SecretStr = Field(min_length=1)
    #: One chat or a list; each gets its own delivery (DESIGN §2). Stored as a tuple.
    chat_id: tuple[ChatId, ...]
    message_thread_id: int | None = Field(default=None, gt=0)
    #: How the text is meant: `text` (every character literal, sent without parse_mode),
    #: `html` or `markdownv2` (Telegram's formatting, checked at intake by Telegram's rules).
    #: The older `parse_mode: HTML | MarkdownV2` is read as `format` (see `_parse_mode`).
    format: Format = "text"
    disable_notification: bool = False
    protect_content: bool = False
    link_preview: bool = True
    #: The Bot API server; a self-hosted `telegram-bot-api` or a test fake sets it.
    api_url: str = "https://api.telegram.org"
    #: Seconds, for connecting and for each read. Kept well under the worker's lease (120 s) so
    #: that a slow answer never lets the delivery be handed to a second process meanwhile.
    timeout: float = Field(default=10.0, gt=0, le=60)
    #: Send text longer than 4096 characters as several messages instead of refusing it (422).
    split_long: bool = False
    #: With `split_long`, the most messages one text may become.
    max_parts: int = Field(default=8, ge=1, le=64)
    #: Messages per second for the whole channel (Telegram: about 30 per bot); null: no limit.
    rate_per_second: float | None = Field(default=30.0, gt=0)
    #: Seconds between messages to one private chat (Telegram: about 1 per second).
    chat_interval: float = Field(default=1.0, ge=0)
    #: Seconds between messages to one group, supergroup or channel (Telegram: 20 per minute).
    group_chat_interval: float = Field(default=3.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse_mode(cls, data: Any) -> Any:
        """`parse_mode`, the deprecated name of `format`, mapped to it. Legacy `Markdown` has
        no `format`: Telegram keeps it only for backward compatibility."""
        if not isinstance(data, dict) or "parse_mode" not in data:
            return data
        data = dict(data)
        mode = data.pop("parse_mode")
        if mode is None:
            return data
        meant = _PARSE_MODE_FORMATS.get(str(mode).strip().lower())
        if meant is None:
            raise ValueError(
                f"parse_mode {mode!r} is not supported; parse_mode is deprecated: set "
                "format: html or format: markdownv2 (legacy Markdown is not supported), or "
                "format: text for text without formatting"
            )
        if data.get("format", meant) != meant:
            raise ValueError(
                f"parse_mode {mode!r} (deprecated) and format {data['format']!r} disagree; "
                "keep only format"
            )
        data["format"] = meant
        return data

    @field_validator("format", mode="before")
    @classmethod
    def _format_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_ids(cls, value: object) -> tuple[ChatId, ...]:
        if not isinstance(value, list | tuple):
            return (_parse_chat_id(value, "chat_id"),)
        if not value:
            raise ValueError("chat_id must name at least one chat")
        chats = tuple(_parse_chat_id(item, f"chat_id item {i + 1}") for i, item in enumerate(value))
        twice = repeated(chats)
        if twice is not None:
            raise ValueError(f"chat_id lists {twice!r} twice; each chat would get it twice")
        return chats

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not is_http_url(value, query=False):
            raise ValueError(
                "api_url must be an http:// or https:// URL, e.g. https://api.telegram.org"
            )
        return value.rstrip("/")


class TelegramWorker(Worker[TelegramParams]):
    """Sends deliveries to Telegram chats through the Bot API's `sendMessage`."""

    Params: ClassVar[type[BaseModel]] = TelegramParams
    max_length: ClassVar[int] = TEXT_LIMIT

    def __init__(self, channel: str, params: TelegramParams) -> None:
        super().__init__(channel, params)
        token = params.token.get_secret_value()
        self._url = f"{params.api_url}/bot{quote(token, safe=':')}/sendMessage"
        self._session: requests.Session | None = None
        # What this process learnt while sending: chats that moved, and parts already delivered.
        self._migrated: dict[str, ChatId] = {}
        self._progress: OrderedDict[int, int] = OrderedDict()
        #: When Telegram last accepted a message of this process to each chat (monotonic).
        self._last_sent: dict[str, float] = {}

    # -- what the core asks the class --------------------------------------------------------

    @classmethod
    def length_limit(cls, params: TelegramParams) -> int | None:
        """With `split_long`, text up to `max_parts` messages long; else one message's worth.
        Formatted text is measured after parsing (`check_message`); this only bounds the
        markup as sent."""
        parts = params.max_parts if params.split_long else 1
        return (TEXT_LIMIT if params.format == "text" else RAW_TEXT_LIMIT) * parts

    @classmethod
    def check_message(cls, params: TelegramParams, message: str) -> str | None:
        reason = super().check_message(params, message)
        if reason is not None:
            return reason
        if params.format == "text":
            return _check_parts(params, split_text(message)) if params.split_long else None
        try:
            parsed = parse(message, params.format)
        except MarkupError as exc:
            return _markup_refusal(params.format, exc)
        if not parsed.text.strip():
            return f"the message has no text once its {params.format} markup is removed"
        if params.split_long:
            return _check_parts(params, [part.text for part in split(parsed)])
        if len(parsed.text) > TEXT_LIMIT:
            return (
                f"the message is {len(parsed.text)} characters long once its {params.format} "
                f"markup is removed; Telegram accepts {TEXT_LIMIT} (set split_long: true to "
                "send it as several messages)"
            )
        return None

    @classmethod
    def literal_text(cls, params: TelegramParams, text: str) -> str:
        return render(Parsed(text), params.format)

    @classmethod
    def recipients(cls, params: TelegramParams) -> list[str]:
        return [str(chat) for chat in params.chat_id]

    @classmethod
    def channel_rate(cls, params: TelegramParams) -> float | None:
        return params.rate_per_second

    @classmethod
    def rate_key(cls, params: TelegramParams) -> str | None:
        """Telegram limits a bot, whichever channel or Bot API server its messages go through."""
        return hashed_rate_key("telegram", params.token.get_secret_value())

    @classmethod
    def recipient_interval(cls, params: TelegramParams, recipient: str) -> float:
        """Private chats (positive ids) get `chat_interval`; groups, supergroups and channels
        (negative ids) and '@username' chats (channels or public supergroups, which may be
        groups) get the stricter `group_chat_interval`."""
        if _INTEGER.fullmatch(recipient) and int(recipient) > 0:
            return params.chat_interval
        return params.group_chat_interval

    # -- the worker process ------------------------------------------------------------------

    def open(self) -> None:
        self._session = BoundedSession()
        self._session.headers["User-Agent"] = f"notifierd/{__version__}"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def send(self, delivery: Delivery) -> None:
        chat = self._migrated.get(delivery.recipient) or _recipient_chat(delivery.recipient)
        parts = self._parts(delivery)
        # Parts an earlier attempt in this process already delivered are not sent again.
        first = self._progress.pop(delivery.id, 0)
        interval = self.recipient_interval(self.params, delivery.recipient)
        message_ids: list[object] = []
        for index in range(first, len(parts)):
            self._keep_pace(delivery.recipient, interval)
            log.debug(
                "telegram.sending",
                channel=self.channel,
                delivery_id=delivery.id,
                chat_id=chat,
                part=index + 1,
                parts=len(parts),
                length=len(parts[index].plain),
            )
            try:
                chat, message_id = self._send_part(delivery, chat, parts[index])
            except DeliveryError as exc:
                if index == 0:
                    raise
                self._remember_progress(delivery.id, index)
                raise _prefixed(
                    exc, f"part {index + 1} of {len(parts)}, after {index} sent: "
                ) from None
            message_ids.append(message_id)
            self._last_sent[delivery.recipient] = time.monotonic()
        log.info(
            "telegram.delivered",
            channel=self.channel,
            delivery_id=delivery.id,
            chat_id=chat,
            parts=len(parts),
            message_ids=message_ids,
        )

    def _parts(self, delivery: Delivery) -> list[_Part]:
        """The messages a delivery becomes: one, or with `split_long` as many as its length
        needs, each with the parse_mode to send it in and its plain text (for the fallback)."""
        message, fmt, split_long = delivery.message, self.params.format, self.params.split_long
        if fmt != "text":
            try:
                parsed = parse(message, fmt)
            except MarkupError as exc:
                # Intake refuses such text, so only a message queued before the channel's
                # format changed gets here: send it as it is, every character literal.
                log.warning(
                    "telegram.markup_invalid",
                    channel=self.channel,
                    delivery_id=delivery.id,
                    error=f"can't parse entities: {exc}",
                    hint="sent as plain text without parse_mode",
                )
            else:
                pieces = split(parsed) if split_long else [parsed]
                mode = PARSE_MODES[fmt]
                if len(pieces) <= 1:  # sent as the client wrote it
                    return [_Part(message, mode, parsed.text)]
                return [_Part(render(piece, fmt), mode, piece.text) for piece in pieces]
        texts = split_text(message) if split_long else [message]
        return [_Part(text, None, text) for text in texts]

    def _keep_pace(self, recipient: str, interval: float) -> None:
        """Wait until `interval` has passed since this process's last message to the chat.

        The parts of one delivery go to one chat, so they keep to its pace. So does the first
        message after them: the dispatcher paces deliveries counting one message each, from
        the moment it hands one out, and would let the next delivery to the chat follow the
        last part of a split one at once."""
        last = self._last_sent.get(recipient)
        if last is not None and interval > 0:
            wait = last + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _remember_progress(self, delivery_id: int, parts_sent: int) -> None:
        self._progress[delivery_id] = parts_sent
        while len(self._progress) > PROGRESS_MEMORY:
            self._progress.popitem(last=False)

    def _send_part(self, delivery: Delivery, chat: ChatId, part: _Part) -> tuple[ChatId, object]:
        """Send one message; return the chat it went to (it may have moved) and its id.
        Should Telegram refuse its markup after all, it goes once more as plain text: a
        message is never lost for its formatting alone."""
        if part.parse_mode is None:
            return self._send_text(delivery, chat, part.plain, None)
        try:
            return self._send_text(delivery, chat, part.text, part.parse_mode)
        except _MarkupRefusedError as refused:
            log.warning(
                "telegram.markup_refused",
                channel=self.channel,
                delivery_id=delivery.id,
                chat_id=chat,
                error=refused.message,
                hint="sent once more as plain text, without its formatting",
            )
        return self._send_text(delivery, chat, part.plain, None)

    def _send_text(
        self, delivery: Delivery, chat: ChatId, text: str, parse_mode: str | None
    ) -> tuple[ChatId, object]:
        """Send one message, following the chat if it moved; return the chat and the id."""
        for _ in range(MAX_MIGRATIONS + 1):
            try:
                result = self._classify(self._post(self._payload(chat, text, parse_mode)), chat)
            except _ChatMigratedError as moved:
                new_chat = moved.new_chat
            else:
                return chat, result.get("message_id")
            log.warning(
                "telegram.chat_migrated",
                channel=self.channel,
                old_chat_id=chat,
                new_chat_id=new_chat,
                hint=(
                    f"the group {chat} became the supergroup {new_chat}; messages are sent there "
                    f"now, but set chat_id to {new_chat} in the config of channel "
                    f"{self.channel!r} (this process forgets it at restart)"
                ),
            )
            self._migrated[delivery.recipient] = new_chat
            chat = new_chat
        raise PermanentFailure(f"Telegram chat {delivery.recipient} kept migrating; last to {chat}")

    def _payload(self, chat: ChatId, text: str, parse_mode: str | None) -> dict[str, Any]:
        params = self.params
        payload: dict[str, Any] = {"chat_id": chat, "text": text}
        if params.message_thread_id is not None:
            payload["message_thread_id"] = params.message_thread_id
        if parse_mode is not None:
            payload["parse_mode"] = parse_mode
        if params.disable_notification:
            payload["disable_notification"] = True
        if params.protect_content:
            payload["protect_content"] = True
        if not params.link_preview:
            # Bot API 7.0 replaced `disable_web_page_preview` with this object.
            payload["link_preview_options"] = {"is_disabled": True}
        return payload

    def _post(self, payload: dict[str, Any]) -> requests.Response:
        if self._session is None:
            raise RuntimeError("TelegramWorker.send called before open()")
        timeout = self.params.timeout
        try:
            return self._session.post(
                self._url,
                # Plain UTF-8, not \u escapes: Cyrillic text is a third of the size.
                data=json.dumps(payload, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json"},
                timeout=(timeout, timeout),
                # A redirect would turn the POST into a GET without the message; report it.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            failure = TemporaryFailure(
                f"Telegram did not answer within {timeout:g} s ({type(exc).__name__})"
            )
        except requests.RequestException as exc:
            failure = TemporaryFailure(f"connection to Telegram failed: {exc}")
        # Raised outside the `except` so that it has neither a cause nor a context that holds
        # the requests exception, whose text contains the URL and so the token.
        raise failure

    def _classify(self, response: requests.Response, chat: ChatId) -> dict[str, Any]:
        """The `result` of a successful answer; else raises a `DeliveryError`, or
        `_ChatMigratedError` when the chat moved."""
        status = response.status_code
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("ok"), bool)):
            raise self._not_bot_api(response)
        if body["ok"]:
            result = body.get("result")
            return result if isinstance(result, dict) else {}
        raw_parameters, error_code = body.get("parameters"), body.get("error_code")
        parameters: dict[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
        code: int = error_code if isinstance(error_code, int) else status
        description = str(body.get("description") or f"HTTP {status}")
        # As in PTB, the parameters win over the status code.
        if isinstance(parameters.get("migrate_to_chat_id"), int):
            raise _ChatMigratedError(parameters["migrate_to_chat_id"])
        if code == 429 or "retry_after" in parameters:
            # Seconds, from the body or the header (Telegram sends no HTTP-date); none or 0:
            # the channel's retry policy.
            retry_after = (
                seconds(parameters.get("retry_after"))
                or seconds(response.headers.get("Retry-After"))
                or None
            )
            raise RateLimited(f"Telegram rate limit ({code} {description})", retry_after)
        if code in (401, 404):
            raise ChannelMisconfigured(
                f"Telegram rejected the bot token ({code} {description}): set params.token of "
                f"channel {self.channel!r} (usually ${{TELEGRAM_BOT_TOKEN}}) to the token "
                f"@BotFather gave, and check that api_url {self.params.api_url!r} is a Bot "
                "API server; deliveries stay queued until it is fixed"
            )
        if code >= 500 or code == 408:
            raise TemporaryFailure(f"Telegram server error ({code} {description})")
        if code == 400 and "can't parse entities" in description.lower():
            raise _MarkupRefusedError(
                f"Telegram refused the message's formatting for chat {chat} ({code} {description})"
            )
        raise PermanentFailure(
            f"Telegram refused the message for chat {chat} ({code} {description})"
        )

    def _not_bot_api(self, response: requests.Response) -> DeliveryError:
        """The failure for an answer that is not the Bot API's JSON envelope."""
        status = response.status_code
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        what = f"HTTP {status} with a body that is not Bot API JSON ({kind})"
        if status == 404 or 300 <= status < 400:
            # Telegram itself answers 404 in JSON; an HTML 404 or a redirect means api_url
            # does not point at a Bot API server, which a retry will not change.
            return ChannelMisconfigured(
                f"api_url {self.params.api_url!r} of channel {self.channel!r} does not look "
                f"like a Bot API server: {what}; deliveries stay queued until it is fixed"
            )
        # A 502 HTML page from Telegram's front end, a proxy's error page: come back later.
        return TemporaryFailure(f"Telegram answered {what}")


class _Part(NamedTuple):
    """One message to send: its text as sent, its parse_mode, and its text without markup."""

    text: str
    parse_mode: str | None
    plain: str


class _MarkupRefusedError(PermanentFailure):
    """Telegram could not parse the message's markup ("can't parse entities")."""


class _ChatMigratedError(Exception):
    """The chat became a supergroup with a new id (`parameters.migrate_to_chat_id`)."""

    def __init__(self, new_chat: int) -> None:
        super().__init__(new_chat)
        self.new_chat = new_chat


def _check_parts(params: TelegramParams, parts: list[str]) -> str | None:
    """The refusal of a text that would need more messages than `max_parts`, else None."""
    if len(parts) > params.max_parts:
        return (
            f"the message would be split into {len(parts)} Telegram messages; "
            f"this channel allows at most {params.max_parts} (max_parts)"
        )
    return None


def _markup_refusal(fmt: Format, error: MarkupError) -> str:
    """A 422's reason for markup Telegram would refuse: where and why, in Telegram's words,
    and for the common slip (a literal character that is markup) how to write it."""
    name = PARSE_MODES[fmt]
    reason = f"Telegram would refuse this {name} text: can't parse entities: {error}"
    if fmt == "html" and error.reason.startswith("Unsupported start tag"):
        return reason + '; write a literal "<" as "&lt;" (and "&" as "&amp;")'
    if fmt == "markdownv2" and error.reason.startswith("Character '"):
        char = error.reason[len("Character '")]
        return reason + f"; write a literal {char!r} as '\\{char}'"
    return reason


def _prefixed(failure: DeliveryError, prefix: str) -> DeliveryError:
    """The same outcome as `failure`, its message prefixed (to say which part failed)."""
    message = prefix + failure.message
    if isinstance(failure, TemporaryFailure):
        return type(failure)(message, failure.retry_after)
    return type(failure)(message)


def _recipient_chat(recipient: str) -> ChatId:
    """The chat id as the Bot API wants it: an integer, or the '@username' string."""
    return int(recipient) if _INTEGER.fullmatch(recipient) else recipient
