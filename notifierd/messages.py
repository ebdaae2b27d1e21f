"""What travels between the parent and the worker processes. Plain tuples-as-dataclasses,
cheap to pickle; imports nothing from the package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Both classes pickle as their constructor's arguments: the default for slotted dataclasses
# looks up the fields for every object, which cost more than the rest of the hand-over.


@dataclass(frozen=True, slots=True)
class Delivery:
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
    #: Wall-clock time when the lease ends; an attempt started later would be a duplicate.
    leased_until: float = float("inf")
    #: Wall-clock time the job was accepted (for the accept-to-delivered latency).
    created_at: float = 0.0

    def __reduce__(self) -> tuple[type[Delivery], tuple[Any, ...]]:
        return Delivery, (
            self.id,
            self.lease_token,
            self.channel,
            self.recipient,
            self.message,
            self.attempt,
            self.expires_at,
            self.leased_until,
            self.created_at,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """A worker's answer for one delivery. `kind` is an `OutcomeKind` value."""

    id: int
    lease_token: int
    kind: str
    retry_after: float | None = None
    error: str | None = None
    #: Seconds the `send` took, for the attempt log line.
    duration: float = 0.0

    def __reduce__(self) -> tuple[type[Outcome], tuple[Any, ...]]:
        return Outcome, (
            self.id,
            self.lease_token,
            self.kind,
            self.retry_after,
            self.error,
            self.duration,
        )
