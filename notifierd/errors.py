"""The exception tree and the daemon's exit codes.

Workers raise `TemporaryFailure` (or its `RateLimited`), `PermanentFailure` or
`ChannelMisconfigured` from `send`; everything else in the package raises `NotifierdError`
subclasses.
"""

from __future__ import annotations

import math

EXIT_OK = 0
EXIT_FAILURE = 1  # a runtime error after start-up
EXIT_CONFIG = 2  # the settings or the channel file are invalid; nothing was started
EXIT_STORE = 2  # the database is lost, damaged or newer than this code; nothing was started
EXIT_NOT_RUNNING = 1  # notifierctl: no daemon answers on the socket

#: The longest wait a remote's Retry-After is taken at its word for. A longer one (a bug, or a
#: flood ban of days) would hold back every channel on that remote for as long and outlast any
#: sensible TTL; capped, the channel asks again after an hour, and a delivery whose TTL ends
#: before its next try expires (DESIGN §2).
MAX_RETRY_AFTER = 3600.0


class NotifierdError(Exception):
    """Base of every error notifierd raises on purpose."""


class ConfigError(NotifierdError):
    """The channel file or the settings are invalid. The message names the file and key path."""


class StoreError(NotifierdError):
    """The Store could not carry out an operation."""


class StoreUnusable(StoreError):
    """The database cannot be used as it is, and going on could lose data: an operator must act.
    The message says what was found and how to recover."""


class StoreUnreachable(StoreError):
    """The Store's database is known not to answer: the operation was not tried. The Store
    said so in its log once, and tries to reach it again by itself."""


class StorageLost(StoreError):
    """The database file was deleted or replaced under the running daemon: nothing written from
    then on would be kept, so nothing is written."""


class StateDirInUse(NotifierdError):
    """Another notifierd holds the state directory's lock (`state_lock.StateLock`)."""


class IdempotencyKeyReused(NotifierdError):
    """A send's idempotency key was first used, on the same channel, with another message or
    delay: the client reused a key it meant for something else."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"the key was first used for job {job_id}, with another message")
        self.job_id = job_id


class DeliveryError(Exception):
    """Base of what a worker's `send` may raise to report an outcome other than delivered."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TemporaryFailure(DeliveryError):
    """The remote could not be reached or asked to come back later: retry per the channel policy.

    `retry_after` (seconds), when the remote said how long to wait, overrides the computed
    backoff and cools the whole channel down for that long.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = _bounded(retry_after)


class RateLimited(TemporaryFailure):
    """The remote asked to slow down: an HTTP 429, Telegram's `retry_after`, Twilio's 20429,
    an SMTP 421/451 "try again later".

    Not a failed attempt: the delivery is not charged one, so `max_attempts` never ends it
    (its TTL does), and it waits `retry_after` seconds, or the channel's retry delay when the
    remote named no time. Every channel that shares the remote's budget (the worker type's
    `rate_key`) cools down for as long.
    """


class PermanentFailure(DeliveryError):
    """The remote refused this message; retrying would not help. The delivery ends FAILED."""


class ChannelMisconfigured(DeliveryError):
    """The channel's own settings are wrong (a bad token, bad credentials).

    The delivery is not charged an attempt: it stays queued (with backoff) until an operator
    fixes the configuration, and the channel shows the error in its status.
    """


def _bounded(seconds: float | None) -> float | None:
    """A remote's Retry-After made safe to wait for: never negative, at most `MAX_RETRY_AFTER`;
    a value that is not a number is no value."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
