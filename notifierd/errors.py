"""The exception tree and the daemon's exit codes.

Workers raise `TemporaryFailure`, `PermanentFailure` or `ChannelMisconfigured` from `send`;
everything else in the package raises `NotifierdError` subclasses.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # a runtime error after start-up
EXIT_CONFIG = 2  # the settings or the channel file are invalid; nothing was started
EXIT_NOT_RUNNING = 1  # notifierctl: no daemon answers on the socket


class NotifierdError(Exception):
    """Base of every error notifierd raises on purpose."""


class ConfigError(NotifierdError):
    """The channel file or the settings are invalid. The message names the file and key path."""


class StoreError(NotifierdError):
    """The Store could not carry out an operation."""


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
        self.retry_after = retry_after


class PermanentFailure(DeliveryError):
    """The remote refused this message; retrying would not help. The delivery ends FAILED."""


class ChannelMisconfigured(DeliveryError):
    """The channel's own settings are wrong (a bad token, bad credentials).

    The delivery is not charged an attempt: it stays queued (with backoff) until an operator
    fixes the configuration, and the channel shows the error in its status.
    """
