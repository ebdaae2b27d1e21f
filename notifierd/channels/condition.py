"""What the remote's answers say about a whole channel rather than one delivery: how long it must
wait (a Retry-After, the probe schedule of a misconfigured channel), whether the remote refuses
its credentials, and the last error it gave."""

from __future__ import annotations

from multiprocessing.sharedctypes import Synchronized

from notifierd.channels.probing import ProbeSchedule


class ChannelCondition:
    """The cool-down, the misconfigured state and the last error of one channel.

    `cooldown` is shared with the channel's worker processes, which do not start a send while it
    lies in the future (`processes.child`)."""

    def __init__(self, cooldown: Synchronized[float], first_probe: float) -> None:
        self._cooldown = cooldown
        self._probes = ProbeSchedule(first_probe)
        #: Why the remote refuses the channel (its error), while it does.
        self.misconfigured: str | None = None
        self.last_error: str | None = None

    @property
    def cooldown_until(self) -> float:
        """Wall-clock time before which the channel sends nothing."""
        return float(self._cooldown.value)

    def cool_down(self, until: float) -> None:
        self._cooldown.value = max(self._cooldown.value, until)

    def works(self) -> None:
        """A delivery went through: the channel is not misconfigured (any more)."""
        self.misconfigured = None
        self._probes.reset()

    def refused(self, error: str | None, now: float) -> float:
        """The remote refused the channel's credentials. Returns the seconds until the next
        probe."""
        self.misconfigured = error
        # Deliveries sent alongside the one that found the problem answer while the channel
        # already waits: only a probe's answer moves the schedule on.
        if now >= self.cooldown_until:
            self.cool_down(now + self._probes.next_interval())
        return self.cooldown_until - now
