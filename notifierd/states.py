"""Delivery states, outcome kinds and worker-slot states. Imports nothing from the package."""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.DEAD, DeliveryState.EXPIRED}
)
RETRYABLE_STATES = frozenset({DeliveryState.FAILED, DeliveryState.DEAD, DeliveryState.EXPIRED})


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    # The remote asked to slow down (a 429): retried after its Retry-After, no attempt charged.
    RATE_LIMITED = "rate_limited"
    PERMANENT = "permanent"
    MISCONFIGURED = "misconfigured"
    # The worker process died (or was killed) while it held the delivery.
    CRASHED = "crashed"
    # The lease ran out before any answer came back (a hung worker).
    LAPSED = "lapsed"
    # The delivery was handed to a worker that ended before starting it, or the channel was
    # cooling down when its turn came: no attempt was made.
    UNSTARTED = "unstarted"
    # Its time-to-live passed while it waited in the worker's queue: no attempt was made.
    EXPIRED = "expired"


class ChannelState(StrEnum):
    RUNNING = "running"
    STARTING = "starting"
    BACKOFF = "backoff"  # a worker died and waits to be restarted
    STOPPED = "stopped"  # deactivated by `notifierctl stop`
    PAUSED = "paused"  # the whole service is in maintenance
    FATAL = "fatal"  # workers crash during start-up in a loop; needs the operator
    MISCONFIGURED = "misconfigured"  # the remote rejects the channel's credentials
