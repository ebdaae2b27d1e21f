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
    """Remembers when each recipient may receive its next delivery."""

    def __init__(self, interval_for: Callable[[str], float]) -> None:
        self._interval_for = interval_for
        self._free_at: dict[str, float] = {}

    def busy(self, now: float) -> set[str]:
        """Recipients that must wait; forgets those that need not any more."""
        self._free_at = {r: t for r, t in self._free_at.items() if t > now}
        return set(self._free_at)

    def next_free(self) -> float | None:
        return min(self._free_at.values(), default=None)

    def sent(self, recipient: str, now: float) -> None:
        interval = self._interval_for(recipient)
        if interval > 0:
            self._free_at[recipient] = now + interval
