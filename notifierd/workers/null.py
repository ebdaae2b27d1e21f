"""The `null` worker: sends nowhere, logs each call (at debug level) and reports delivered.

It is notifierd's test double, so it can also be told to misbehave (`faults`), to be slow
(`send_seconds`) or to fail at start-up (`fail_on_open`): every transition of the delivery state
machine can be driven end to end through a real daemon with it.
"""

from __future__ import annotations

import os
import re
import time
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from notifierd.errors import (
    ChannelMisconfigured,
    PermanentFailure,
    RateLimited,
    TemporaryFailure,
)
from notifierd.messages import Delivery
from notifierd.workers.base import RegexPattern, Worker

log = structlog.get_logger("notifierd.worker.null")

FaultKind = Literal[
    "temporary", "permanent", "retry_after", "rate_limited", "misconfigured", "hang", "crash"
]


class Fault(BaseModel):
    """Misbehave for deliveries whose message matches `match`, on attempts 1..`times`
    (`times: 0` = on every attempt). `retry_after` is a temporary failure that names a wait
    (a 503 with Retry-After); `rate_limited` is a 429, which is charged no attempt, so it
    repeats whatever `times` says until the delivery's TTL ends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    match: RegexPattern = ""
    times: int = Field(default=0, ge=0)
    retry_after: float = Field(default=1.0, gt=0)
    seconds: float = Field(default=3600.0, gt=0, description="how long `hang` hangs")

    def applies(self, delivery: Delivery) -> bool:
        if self.times and delivery.attempt > self.times:
            return False
        return re.search(self.match, delivery.message) is not None


class NullParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    recipients: list[str] = Field(default_factory=lambda: [""])
    send_seconds: float = Field(default=0.0, ge=0, description="time each send takes")
    fail_on_open: bool = False
    faults: list[Fault] = Field(default_factory=list)


class NullWorker(Worker[NullParams]):
    Params = NullParams
    prefetch = 256
    lease_seconds = 60.0

    @classmethod
    def recipients(cls, params: NullParams) -> list[str]:
        return list(params.recipients)

    def open(self) -> None:
        if self.params.fail_on_open:
            raise RuntimeError("null worker told to fail at start-up (fail_on_open)")

    def send(self, delivery: Delivery) -> None:
        params = self.params
        if params.send_seconds:
            time.sleep(params.send_seconds)
        for fault in params.faults:
            if fault.applies(delivery):
                self._misbehave(fault)
        # Debug, not info: at thousands of deliveries a second, shipping one line each to the
        # parent and rendering it there cost more than all the rest of the delivery.
        log.debug(
            "null.delivered",
            channel=delivery.channel,
            delivery_id=delivery.id,
            recipient=delivery.recipient,
            length=len(delivery.message),
            attempt=delivery.attempt,
        )

    @staticmethod
    def _misbehave(fault: Fault) -> None:
        if fault.kind == "temporary":
            raise TemporaryFailure("null worker: injected temporary failure")
        if fault.kind == "retry_after":
            raise TemporaryFailure("null worker: injected Retry-After", fault.retry_after)
        if fault.kind == "rate_limited":
            raise RateLimited("null worker: injected rate limit", fault.retry_after)
        if fault.kind == "permanent":
            raise PermanentFailure("null worker: injected permanent refusal")
        if fault.kind == "misconfigured":
            raise ChannelMisconfigured("null worker: injected misconfiguration")
        if fault.kind == "hang":
            time.sleep(fault.seconds)
            return
        os.kill(os.getpid(), 9)  # "crash": die the hard way, as a segfault or OOM kill would
