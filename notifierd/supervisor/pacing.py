"""How fast a channel may hand out deliveries: a rate for the whole channel (token bucket) and
a minimum interval between two deliveries to the same recipient."""

from __future__ import annotations

import math
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._updated: float | None = None

    def available(self, now: float) -> int:
        self._refill(now)
        return math.floor(self._tokens)

    def take(self, count: int, now: float) -> None:
        self._refill(now)
        self._tokens -= count

    def seconds_until_one(self, now: float) -> float:
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            # A wall clock stepping back must not drain the bucket.
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now


class RecipientPacer:
    """Remembers when each recipient may receive its next delivery.

    A recipient is busy while a delivery to it is being sent (a send can take long: a slow
    remote, a long message sent in parts) and for the interval after it was handed out and
    after it was answered, whichever ends later."""

    def __init__(self, interval_for: Callable[[str], float]) -> None:
        self._interval_for = interval_for
        self._free_at: dict[str, float] = {}
        self._sending: dict[str, int] = {}

    def busy(self, now: float) -> set[str]:
        """Recipients that must wait; forgets those that need not any more."""
        self._free_at = {r: t for r, t in self._free_at.items() if t > now}
        return set(self._free_at) | set(self._sending)

    def next_free(self) -> float | None:
        """When the next waiting recipient is free (those being sent to wake by outcome)."""
        return min((t for r, t in self._free_at.items() if r not in self._sending), default=None)

    def started(self, recipient: str, now: float) -> None:
        """A delivery to `recipient` was handed to a worker."""
        interval = self._interval_for(recipient)
        if interval > 0:
            self._sending[recipient] = self._sending.get(recipient, 0) + 1
            self._free_at[recipient] = max(self._free_at.get(recipient, 0.0), now + interval)

    def finished(self, recipient: str, now: float) -> None:
        """The worker answered for (or dropped) a delivery to `recipient`."""
        count = self._sending.get(recipient)
        if count is None:
            return
        if count > 1:
            self._sending[recipient] = count - 1
        else:
            del self._sending[recipient]
        interval = self._interval_for(recipient)
        self._free_at[recipient] = max(self._free_at.get(recipient, 0.0), now + interval)
