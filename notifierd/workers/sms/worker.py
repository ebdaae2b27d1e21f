"""The `sms` worker: each delivery one request to the channel's gateway."""

from __future__ import annotations

import time

import requests
import structlog

from notifierd import __version__
from notifierd.messages import Delivery
from notifierd.workers.base import Worker, hashed_rate_key
from notifierd.workers.remote import BoundedSession
from notifierd.workers.sms.gateway import send_http
from notifierd.workers.sms.params import SmsParams
from notifierd.workers.sms.parts import SmsEncoding, count_parts
from notifierd.workers.sms.smsru import SmsRuParams, send_smsru
from notifierd.workers.sms.twilio import TwilioParams, send_twilio, validity_period

log = structlog.get_logger("notifierd.worker.sms")


class SmsWorker(Worker[SmsParams]):
    """Sends each delivery as one request to the channel's gateway."""

    Params = SmsParams
    max_length = None  # counted in parts by check_message

    def __init__(self, channel: str, params: SmsParams) -> None:
        super().__init__(channel, params)
        self._session: requests.Session | None = None

    @classmethod
    def recipients(cls, params: SmsParams) -> list[str]:
        return list(params.root.phones)

    @classmethod
    def rate_key(cls, params: SmsParams) -> str | None:
        """A provider limits an account (Twilio's 20429 counts the account's requests),
        whichever channel, sender or number a message uses. A templated gateway's account is
        unknown to us: its channel is a budget of its own."""
        provider = params.root
        if isinstance(provider, TwilioParams):
            return hashed_rate_key("sms.twilio", provider.account_sid)
        if isinstance(provider, SmsRuParams):
            return hashed_rate_key("sms.smsru", provider.api_id.get_secret_value())
        return None

    @classmethod
    def check_message(cls, params: SmsParams, message: str) -> str | None:
        limit = params.root.max_parts
        parts = count_parts(message)
        if parts.parts <= limit:
            return None
        if parts.encoding is SmsEncoding.GSM7:
            length = f"{parts.units} septets long in GSM-7 (^{{}}[]~|€\\ take two)"
        else:
            length = f"{parts.units} UTF-16 units long in UCS-2 (an emoji takes two)"
        return (
            f"message is {length} and needs {parts.parts} SMS parts of {parts.per_part}; "
            f"this channel allows at most {limit} (max_parts)"
        )

    def open(self) -> None:
        self._session = BoundedSession()
        self._session.headers["User-Agent"] = f"notifierd/{__version__}"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def send(self, delivery: Delivery) -> None:
        if self._session is None:
            raise RuntimeError("SmsWorker.send() called before open()")
        params = self.params
        provider = params.root
        if isinstance(provider, TwilioParams):
            validity = validity_period(delivery.expires_at, time.time())
            remote_id = send_twilio(
                self._session, provider, delivery.recipient, delivery.message, validity
            )
        elif isinstance(provider, SmsRuParams):
            remote_id = send_smsru(self._session, provider, delivery.recipient, delivery.message)
        else:
            remote_id = send_http(self._session, provider, delivery.recipient, delivery.message)
        log.info(
            "sms.delivered",
            channel=delivery.channel,
            delivery_id=delivery.id,
            provider=provider.provider,
            recipient=delivery.recipient,
            parts=count_parts(delivery.message).parts,
            attempt=delivery.attempt,
            remote_id=remote_id,
        )
