"""The `params` of a `telegram` channel, and the chat ids they name."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from notifierd.workers.base import repeated
from notifierd.workers.remote import is_http_url
from notifierd.workers.telegram.markup import Format

_USERNAME = re.compile(r"@[A-Za-z0-9_]+")
INTEGER = re.compile(r"-?[0-9]+")

ChatId = int | str
_PARSE_MODE_FORMATS: dict[str, Format] = {"html": "html", "markdownv2": "markdownv2"}


def _parse_chat_id(value: object, where: str) -> ChatId:
    # bool is an int subclass: `chat_id: yes` must not become chat 1.
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        return value
    if isinstance(value, str):
        value = value.strip()
        if INTEGER.fullmatch(value) and int(value) != 0:
            return int(value)  # an id that came through an environment variable as text
        if _USERNAME.fullmatch(value):
            return value
    raise ValueError(
        f"{where} must be a non-zero integer chat id (e.g. -1001234567890) or a public "
        f"channel username starting with '@' (e.g. '@mychannel'), got {value!r}"
    )


def recipient_chat(recipient: str) -> ChatId:
    """The chat id as the Bot API wants it: an integer, or the '@username' string."""
    return int(recipient) if INTEGER.fullmatch(recipient) else recipient


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
