"""How a misconfigured channel finds out that it was fixed: by probing.

While the remote refuses the channel's credentials, its deliveries wait, uncharged, and one of
them at a time is tried again after a growing interval: `retry.delay` times 1, 3, 6, 12, 30
and 60 (with the default delay of 10 s: 10 s, 30 s, 1 min, 2 min, 5 min, then every 10 min).
A remote that sees the same wrong password every few seconds bans the host (fail2ban counts
refused logins: five in ten minutes is a common limit), and a ban outlives the fix.
"""

from __future__ import annotations

PROBE_FACTORS = (1, 3, 6, 12, 30, 60)
PROBE_MAX_SECONDS = 600.0


class ProbeSchedule:
    """The intervals between probes of a misconfigured channel."""

    def __init__(self, first: float) -> None:
        self._first = first
        self._step = 0

    def next_interval(self) -> float:
        """Seconds until the next probe; each call moves one step further."""
        factor = PROBE_FACTORS[min(self._step, len(PROBE_FACTORS) - 1)]
        self._step += 1
        return min(self._first * factor, max(PROBE_MAX_SECONDS, self._first))

    def reset(self) -> None:
        """The channel works again: the next misconfiguration starts from the first step."""
        self._step = 0
