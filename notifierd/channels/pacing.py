"""How fast a channel may hand out deliveries: a rate for the whole channel (a send window)
and a minimum interval between two deliveries to the same recipient."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable


class SendWindow:
    """At most `limit` sends in any `window` seconds, as the remote counts them.

    The remote sees a request some time after it was handed out (a worker busy with another,
    a slow connection), so a send holds its slot from hand-out until `window` seconds after its
    answer: the send after `limit` others is handed out no sooner than a window after the first
    of them was answered, and cannot reach the remote within that window, however late the
    first one arrived. (Counting hand-outs, as a token bucket does, lets a late burst meet the
    next one: up to twice the limit within one window at the remote.)"""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._sending = 0
        #: When answered sends' slots come free, in ascending order.
        self._free_at: deque[float] = deque()

    @classmethod
    def per_second(cls, rate: float) -> SendWindow:
        """`rate` sends a second: that many in each second, or one in each 1/`rate` seconds
        when `rate` is below one."""
        limit = max(1, math.floor(rate))
        return cls(limit, limit / rate)

    def available(self, now: float) -> int:
        while self._free_at and self._free_at[0] <= now:
            self._free_at.popleft()
        return max(0, self.limit - self._sending - len(self._free_at))

    def next_free(self) -> float | None:
        """When the next answered send's slot comes free; None when every slot waits for an
        answer (whose outcome wakes the dispatcher)."""
        return self._free_at[0] if self._free_at else None

    def snapshot(self, now: float) -> list[float]:
        """When each held slot comes free, for a successor to go on from (`restore`): a send
        not answered yet holds its slot as if answered now."""
        held = [t for t in self._free_at if t > now]
        return held + [now + self.window] * self._sending

    def restore(self, free_at: list[float], now: float) -> None:
        """Slots another holder of the budget left taken (`snapshot`), kept with this one's."""
        taken = [t for t in free_at if t > now] + list(self._free_at)
        self._free_at = deque(sorted(taken))

    def started(self, count: int) -> None:
        """`count` sends were handed out."""
        self._sending += count

    def finished(self, count: int, now: float) -> None:
        """`count` sends were answered (or dropped)."""
        count = min(count, self._sending)
        self._sending -= count
        # A wall clock stepping back must not free a slot before the ones already waiting.
        free_at = max(now + self.window, self._free_at[-1] if self._free_at else now)
        self._free_at.extend([free_at] * count)


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

    def snapshot(self, now: float) -> dict[str, float]:
        """When each recipient may receive again, for a successor (`restore`): one being sent
        to waits its interval from now, as if answered now."""
        free = {r: t for r, t in self._free_at.items() if t > now}
        for recipient in self._sending:
            free[recipient] = max(free.get(recipient, 0.0), now + self._interval_for(recipient))
        return free

    def restore(self, free_at: dict[str, float], now: float) -> None:
        """Recipients another holder of the budget left waiting (`snapshot`)."""
        for recipient, until in free_at.items():
            if until > now:
                self._free_at[recipient] = max(self._free_at.get(recipient, 0.0), until)

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
