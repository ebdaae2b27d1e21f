"""Deliveries by channel and state, kept in memory by the SQLite Store so that `status` and
`/metrics` cost the same at a thousand rows and at a million: counted in full once when the
Store opens, then moved at each state transition, as the transaction that makes it commits.

`queued` and `delayed` split the queued deliveries by due time, which moves with the clock,
not with a transition: the due times still in the future are kept in a heap per channel and
popped as they pass (each once), so a scrape costs O(1) amortised. Only delayed deliveries are
in a heap (a retry's wait, a message sent with `delay`): about 30 bytes each.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable

from notifierd.states import DeliveryState
from notifierd.store.base import StoreCounts

QUEUED = DeliveryState.QUEUED.value
LEASED = DeliveryState.LEASED.value
EXPIRED = DeliveryState.EXPIRED.value
#: StoreCounts' field for each stored state other than queued (split by due time).
FIELDS = {
    LEASED: "in_flight",
    DeliveryState.DELIVERED.value: "delivered",
    DeliveryState.FAILED.value: "failed",
    DeliveryState.DEAD.value: "dead",
    EXPIRED: "expired",
}


class CountChanges:
    """The count changes one transaction makes: applied if it commits, dropped if not. An
    operation that fails inside the transaction (its savepoint rolled back) gives its own
    changes back with `undo(mark)`."""

    __slots__ = ("delays", "moves", "undelays")

    def __init__(self) -> None:
        #: (channel, state, +n or -n)
        self.moves: list[tuple[str, str, int]] = []
        #: (channel, due time) of deliveries queued with a due time in the future
        self.delays: list[tuple[str, float]] = []
        #: (channel, due time) of such deliveries that left the queue before their due time
        self.undelays: list[tuple[str, float]] = []

    def move(self, channel: str, old: str | None, new: str | None, number: int = 1) -> None:
        """`number` deliveries of `channel` went from `old` to `new` (None: added, deleted)."""
        if old is not None:
            self.moves.append((channel, old, -number))
        if new is not None:
            self.moves.append((channel, new, number))

    def queued_until(self, channel: str, due_at: float, now: float) -> None:
        """A delivery (re)queued at `now` is due at `due_at`."""
        if due_at > now:
            self.delays.append((channel, due_at))

    def dequeued_early(self, channel: str, due_at: float, now: float) -> None:
        """A queued delivery left the queue (expired) at `now`, before or at `due_at`."""
        if due_at > now:
            self.undelays.append((channel, due_at))

    def mark(self) -> tuple[int, int, int]:
        return len(self.moves), len(self.delays), len(self.undelays)

    def undo(self, mark: tuple[int, int, int]) -> None:
        del self.moves[mark[0] :]
        del self.delays[mark[1] :]
        del self.undelays[mark[2] :]


class DueTimes:
    """The future due times of one channel's queued deliveries. Everything at or before
    `horizon` (the latest time counted at) has been popped; a delivery that leaves the queue
    before its due time is struck off by a tally of its due time, settled when it is popped."""

    __slots__ = ("_heap", "_struck", "_struck_total", "horizon")

    def __init__(self) -> None:
        self.horizon = float("-inf")
        self._heap: list[float] = []
        self._struck: Counter[float] = Counter()
        self._struck_total = 0

    def load(self, due_times: list[float]) -> None:
        """Start from these due times (all in the future), taking the list as the heap."""
        heapq.heapify(due_times)
        self._heap = due_times

    def push(self, due_at: float) -> None:
        if due_at > self.horizon:
            heapq.heappush(self._heap, due_at)

    def strike(self, due_at: float) -> None:
        # Past the horizon, the due time was pushed and is still in the heap.
        if due_at > self.horizon:
            self._struck[due_at] += 1
            self._struck_total += 1

    def count(self, now: float) -> int:
        """How many are still due after `now`."""
        self.horizon = max(self.horizon, now)
        heap = self._heap
        while heap and heap[0] <= self.horizon:
            due_at = heapq.heappop(heap)
            if self._struck[due_at]:
                self._struck[due_at] -= 1
                self._struck_total -= 1
                if not self._struck[due_at]:
                    del self._struck[due_at]
        return len(heap) - self._struck_total


class DeliveryCounts:
    """The live counts of one Store."""

    def __init__(self) -> None:
        self._states: dict[str, Counter[str]] = {}
        self._due: dict[str, DueTimes] = {}

    def reset(
        self, by_state: Iterable[tuple[str, str, int]], due_later: Iterable[tuple[str, float]]
    ) -> None:
        """Start from a full count: deliveries by (channel, state), and the due times of the
        queued ones that are due in the future. (Those due already are not needed: a delivery
        queued or struck off later is never due before now.)"""
        self._states = {}
        self._due = {}
        for channel, state, number in by_state:
            self._channel(channel)[state] += number
        # Gathered per channel and made a heap once (linear), rather than pushed one by one:
        # a backlog of a million delayed deliveries is read at every start-up.
        gathered: dict[str, list[float]] = {}
        for channel, due_at in due_later:
            times = gathered.get(channel)
            if times is None:
                times = gathered[channel] = []
            times.append(due_at)
        for channel, times in gathered.items():
            self._due_times(channel).load(times)

    def apply(self, changes: CountChanges) -> None:
        for channel, state, number in changes.moves:
            self._channel(channel)[state] += number
        for channel, due_at in changes.delays:
            self._due_times(channel).push(due_at)
        for channel, due_at in changes.undelays:
            self._due_times(channel).strike(due_at)

    def snapshot(self, now: float) -> dict[str, StoreCounts]:
        """Per channel that has deliveries, deliveries by state, as at `now`."""
        result: dict[str, StoreCounts] = {}
        for channel, states in self._states.items():
            if not any(states.values()):
                continue
            queued = states[QUEUED]
            due = self._due.get(channel)
            # min: a claim made at a later `now` than this one may have taken some already.
            delayed = min(queued, due.count(now)) if due is not None else 0
            counts = StoreCounts(queued=queued - delayed, delayed=delayed)
            for state, field in FIELDS.items():
                setattr(counts, field, states[state])
            result[channel] = counts
        return result

    def _channel(self, channel: str) -> Counter[str]:
        states = self._states.get(channel)
        if states is None:
            states = self._states[channel] = Counter()
        return states

    def _due_times(self, channel: str) -> DueTimes:
        due = self._due.get(channel)
        if due is None:
            due = self._due[channel] = DueTimes()
        return due
