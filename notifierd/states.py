"""Delivery states, outcome kinds, channel states and worker-slot states, with their legal
transitions. Imports nothing from the package."""

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


class SlotState(StrEnum):
    """Where one of a channel's worker slots is (`channels.pool`). A slot is a position among the
    channel's processes; the process in it changes as it is restarted."""

    IDLE = "idle"  # no process and none due: the channel is not active
    STARTING = "starting"  # its process was started and has not said that it is ready
    RUNNING = "running"  # its process takes deliveries
    STOPPING = "stopping"  # its process was asked to end after what it holds
    BACKOFF = "backoff"  # its process ended unasked; a restart is due
    FATAL = "fatal"  # its processes failed to start too often in a row: the operator decides


# Every legal move of a slot, with the event that makes it. The channel is active (it wants its
# workers) in STARTING, RUNNING and BACKOFF: deactivating it moves each slot out of them.
SLOT_TRANSITIONS: dict[SlotState, frozenset[SlotState]] = {
    SlotState.IDLE: frozenset({SlotState.STARTING}),  # the channel is activated
    SlotState.STARTING: frozenset(
        {
            SlotState.RUNNING,  # the process says it is ready
            SlotState.STOPPING,  # the channel is deactivated
            SlotState.BACKOFF,  # the process ended before it was ready, failures left
            SlotState.FATAL,  # the process ended before it was ready, the last time allowed
        }
    ),
    SlotState.RUNNING: frozenset(
        {
            SlotState.STOPPING,  # the channel is deactivated
            SlotState.BACKOFF,  # the process died
        }
    ),
    SlotState.STOPPING: frozenset(
        {
            SlotState.IDLE,  # the process ended, the channel is still inactive
            # The channel was activated again before the process ended: as from STARTING or
            # RUNNING, but an orderly end is followed by a new process at once.
            SlotState.STARTING,
            SlotState.BACKOFF,
            SlotState.FATAL,
        }
    ),
    SlotState.BACKOFF: frozenset(
        {
            SlotState.STARTING,  # the restart is due, or the channel is activated
            SlotState.IDLE,  # the channel is deactivated: the restart is cancelled
        }
    ),
    SlotState.FATAL: frozenset({SlotState.STARTING}),  # the operator starts the channel
}
