"""The intervals between probes of a misconfigured channel."""

from __future__ import annotations

from notifierd.channels.probing import ProbeSchedule


def test_default_intervals_grow_to_ten_minutes() -> None:
    schedule = ProbeSchedule(10.0)
    intervals = [schedule.next_interval() for _ in range(8)]
    assert intervals == [10, 30, 60, 120, 300, 600, 600, 600]


def test_intervals_follow_the_channel_retry_delay_and_reset() -> None:
    schedule = ProbeSchedule(0.5)
    assert [schedule.next_interval() for _ in range(3)] == [0.5, 1.5, 3.0]
    schedule.reset()
    assert schedule.next_interval() == 0.5


def test_a_first_delay_beyond_the_cap_is_kept() -> None:
    schedule = ProbeSchedule(900.0)
    assert [schedule.next_interval() for _ in range(2)] == [900.0, 900.0]
