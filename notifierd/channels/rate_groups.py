"""Pacing shared by the channels that spend one remote budget.

A worker type names the budget a channel spends (`Worker.rate_key`: a Telegram bot, an SMS
provider account). The channels with one key share a `RateGroup`: one send window (the
smallest `channel_rate` among them), one interval per recipient (the longest any of them asks
for), one cool-down after a remote's "slow down", and a lock under which their dispatchers
hand out one at a time, so that two never take the same free slot or recipient. A channel
whose worker type names no key is a group of its own.

Hosts sharing a Store dispatch a key one at a time (`rate_lease.KeyLease`, set as the group's
`lease`); the pacing state crosses from one holder to the next as a `checkpoint`. A group
without a key, or without a send rate (a webhook's endpoint), has no lease: every host
dispatches it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from notifierd.channels.pacing import RecipientPacer, SendWindow
from notifierd.config import Channel
from notifierd.messages import Delivery

if TYPE_CHECKING:
    from notifierd.channels.rate_lease import KeyLease


class Member(Protocol):
    """What a group asks of a channel's runner."""

    def cool_down(self, until: float) -> None: ...

    def wake(self) -> None: ...


class RateGroup:
    """The pacing state of one rate key (or of one channel without a key)."""

    def __init__(self, key: str | None, channels: Sequence[Channel]) -> None:
        self.key = key
        self._channels = channels
        rates = [rate for c in channels if (rate := c.worker_class.channel_rate(c.params))]
        self.window = SendWindow.per_second(min(rates)) if rates else None
        self.pacer = RecipientPacer(self.interval)
        self.lock = asyncio.Lock()
        self._members: list[Member] = []
        #: Whether this host may dispatch the key now; None: it always may (no key).
        self.lease: KeyLease | None = None
        self._cooldown_until = 0.0

    def join(self, member: Member) -> None:
        self._members.append(member)

    def interval(self, recipient: str) -> float:
        """Seconds between two deliveries to `recipient`, from whichever channel."""
        return max(c.worker_class.recipient_interval(c.params, recipient) for c in self._channels)

    def started(self, deliveries: Sequence[Delivery], now: float) -> None:
        """`deliveries` were handed to worker processes."""
        for delivery in deliveries:
            self.pacer.started(delivery.recipient, now)
        if self.window is not None:
            self.window.started(len(deliveries))

    def finished(self, deliveries: Sequence[Delivery], now: float, by: Member) -> None:
        """`by`'s workers answered for (or dropped) `deliveries`: the other channels may now
        have a free slot or recipient (`by` is woken when the outcomes are stored)."""
        if not deliveries:
            return
        for delivery in deliveries:
            self.pacer.finished(delivery.recipient, now)
        if self.window is not None:
            self.window.finished(len(deliveries), now)
        for member in self._members:
            if member is not by:
                member.wake()

    def cool_down(self, until: float) -> None:
        """No channel of the group may send before `until` (the remote asked to slow down)."""
        self._cooldown_until = max(self._cooldown_until, until)
        for member in self._members:
            member.cool_down(until)

    def wake_all(self) -> None:
        for member in self._members:
            member.wake()

    def checkpoint(self, now: float) -> str:
        """The pacing state (Store's clock) a successor on another host goes on from."""
        state: dict[str, Any] = {
            "recipients": self.pacer.snapshot(now),
            "cooldown_until": self._cooldown_until,
        }
        if self.window is not None:
            state["window"] = self.window.snapshot(now)
        return json.dumps(state)

    def restore(self, checkpoint: str | None, now: float) -> None:
        """Go on from a predecessor's `checkpoint`. One that cannot be read counts as a full
        window: better a second's wait than a burst above the remote's limit."""
        if checkpoint is None:
            return
        try:
            state = json.loads(checkpoint)
            window = [float(t) for t in state.get("window", [])]
            recipients = {str(r): float(t) for r, t in state["recipients"].items()}
            cooldown_until = float(state["cooldown_until"])
        except (ValueError, TypeError, KeyError, AttributeError):
            if self.window is not None:
                self.window.restore([now + self.window.window] * self.window.limit, now)
            return
        if self.window is not None:
            self.window.restore(window, now)
        self.pacer.restore(recipients, now)
        if cooldown_until > now:
            self.cool_down(cooldown_until)


def rate_groups(channels: Iterable[Channel]) -> dict[str, RateGroup]:
    """Each channel's group, by channel name."""
    by_key: dict[str, list[Channel]] = {}
    groups: dict[str, RateGroup] = {}
    for channel in channels:
        key = channel.worker_class.rate_key(channel.params)
        if key is None:
            groups[channel.name] = RateGroup(None, [channel])
        else:
            by_key.setdefault(key, []).append(channel)
    for key, members in by_key.items():
        group = RateGroup(key, members)
        for channel in members:
            groups[channel.name] = group
    return groups
