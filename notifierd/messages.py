"""What travels between the parent and the worker processes: named tuples, immutable and cheap
to make; imports nothing from the package but the `states` leaf.

Named tuples rather than frozen dataclasses: the parent makes one of each per message, and a
frozen dataclass sets each field through object.__setattr__. They cross the pipes as plain
tuples of their fields (`processes.wire`)."""

from __future__ import annotations

from typing import NamedTuple

from notifierd.states import OutcomeKind


class Delivery(NamedTuple):
    """One message to one recipient, as handed to a worker. Self-contained: the worker needs
    nothing else to send it."""

    id: int
    lease_token: int
    channel: str
    recipient: str
    message: str
    attempt: int
    #: Wall-clock time after which the delivery must not be attempted (its TTL).
    expires_at: float = float("inf")
    #: When the lease ends, on the Store's clock; an attempt started later could duplicate
    #: another host's. As handed to a worker: sooner, when this host's hold on what it leased
    #: ends first (`Store.fence_deadline`).
    leased_until: float = float("inf")
    #: Wall-clock time the job was accepted (for the accept-to-delivered latency).
    created_at: float = 0.0


class Outcome(NamedTuple):
    """A worker's answer for one delivery."""

    id: int
    lease_token: int
    kind: OutcomeKind
    retry_after: float | None = None
    error: str | None = None
    #: Seconds the `send` took, for the attempt log line.
    duration: float = 0.0
