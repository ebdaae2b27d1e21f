"""The delivery state machine of DESIGN §2, as pure functions: what a worker's outcome does to a
leased delivery. The Store applies the result; nothing here touches I/O."""

from __future__ import annotations

from dataclasses import dataclass

from notifierd.retry import RetryPolicy
from notifierd.states import DeliveryState, OutcomeKind


@dataclass(frozen=True, slots=True)
class Transition:
    """Where a leased delivery goes. `due_at` None keeps the current due time; `uncount`
    gives the attempt back (the delivery was never tried, the channel is misconfigured, or the
    remote asked to slow down)."""

    state: DeliveryState
    due_at: float | None = None
    error: str | None = None
    uncount: bool = False


def after_outcome(
    *,
    kind: OutcomeKind,
    attempts: int,
    expires_at: float,
    error: str | None,
    retry_after: float | None,
    policy: RetryPolicy,
    now: float,
    spread: float,
) -> Transition:
    """The transition of a leased delivery that has made `attempts` attempts, given the outcome
    of the last one. `spread` in [-1, 1] is the jitter draw."""
    if kind is OutcomeKind.DELIVERED:
        return Transition(DeliveryState.DELIVERED)
    if kind is OutcomeKind.PERMANENT:
        return Transition(DeliveryState.FAILED, error=error)
    if kind is OutcomeKind.UNSTARTED:
        return Transition(DeliveryState.QUEUED, uncount=True)
    if kind is OutcomeKind.EXPIRED:
        return Transition(DeliveryState.EXPIRED, error=error, uncount=True)
    if kind is OutcomeKind.MISCONFIGURED:
        # Not the message's fault: no attempt is charged; the channel's cool-down paces retries.
        if now >= expires_at:
            return Transition(DeliveryState.EXPIRED, error=error)
        return Transition(DeliveryState.QUEUED, due_at=now, error=error, uncount=True)
    if kind is OutcomeKind.RATE_LIMITED:
        # "Slow down" is not the message's failure: no attempt is charged, so only the TTL
        # bounds how long a remote that keeps saying it holds the delivery. A Retry-After of
        # 0 is no wait at all: the channel's delay keeps such a remote from a tight loop.
        wait = retry_after if retry_after else policy.delay_after(attempts, spread)
        if now + wait >= expires_at:
            return Transition(DeliveryState.EXPIRED, error=error, uncount=True)
        return Transition(DeliveryState.QUEUED, due_at=now + wait, error=error, uncount=True)
    # A temporary failure, a crash of the worker process, or a lapsed lease: the attempt counts.
    if attempts >= policy.max_attempts:
        return Transition(DeliveryState.DEAD, error=error)
    wait = retry_after if retry_after is not None else policy.delay_after(attempts, spread)
    if now + wait >= expires_at:
        return Transition(DeliveryState.EXPIRED, error=error)
    return Transition(DeliveryState.QUEUED, due_at=now + wait, error=error)
