"""The `telegram` worker: sends each delivery as a Bot API `sendMessage` to one chat.

A channel lists one chat or several (`chat_id`); a job fans out into one delivery per chat, and
`send` gets the chat id as `delivery.recipient`. The dispatcher paces deliveries with
`channel_rate` and `recipient_interval`, which default to Telegram's published limits (about
30 messages/s per bot, 1/s per chat, 20/min per group) so that the channel does not collect 429s.

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
import time
from collections import OrderedDict
from typing import Any, ClassVar
from urllib.parse import quote

import requests
import structlog
from pydantic import BaseModel

from notifierd import __version__
from notifierd.errors import DeliveryError, PermanentFailure, TemporaryFailure
from notifierd.messages import Delivery
from notifierd.workers.base import Worker, hashed_rate_key
from notifierd.workers.remote import BoundedSession
from notifierd.workers.telegram.answers import (
    ChatMigratedError,
    MarkupRefusedError,
    classify,
    prefixed,
)
from notifierd.workers.telegram.markup import TEXT_LIMIT, Parsed, render
from notifierd.workers.telegram.params import INTEGER, ChatId, TelegramParams, recipient_chat
from notifierd.workers.telegram.parts import Part, check_text, message_parts

log = structlog.get_logger("notifierd.worker.telegram")

#: The Bot API's cap on the text of one request as sent, markup included (provider-protocols
#: §1: 32 KiB); the limit that matters is TEXT_LIMIT, on the text after parsing.
RAW_TEXT_LIMIT = 32 * 1024
#: How many times one part may be re-targeted by `migrate_to_chat_id` before giving up; one is
#: what happens in practice, more means the server is confused.
MAX_MIGRATIONS = 3
#: Deliveries whose partial progress a worker process remembers (see the module docstring).
PROGRESS_MEMORY = 1024


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
        return check_text(params, message)

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
        if INTEGER.fullmatch(recipient) and int(recipient) > 0:
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
        chat = self._migrated.get(delivery.recipient) or recipient_chat(delivery.recipient)
        parts = message_parts(self.params, delivery.message, self.channel, delivery.id)
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
                raise prefixed(
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

    def _send_part(self, delivery: Delivery, chat: ChatId, part: Part) -> tuple[ChatId, object]:
        """Send one message; return the chat it went to (it may have moved) and its id.
        Should Telegram refuse its markup after all, it goes once more as plain text: a
        message is never lost for its formatting alone."""
        if part.parse_mode is None:
            return self._send_text(delivery, chat, part.plain, None)
        try:
            return self._send_text(delivery, chat, part.text, part.parse_mode)
        except MarkupRefusedError as refused:
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
                response = self._post(self._payload(chat, text, parse_mode))
                result = classify(response, chat, self.channel, self.params.api_url)
            except ChatMigratedError as moved:
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
