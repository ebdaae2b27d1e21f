"""Channel pacing: the send window and the per-recipient interval."""

from __future__ import annotations

import pytest

from notifierd.channels.pacing import RecipientPacer, SendWindow

T0 = 5000.0


def test_window_starts_with_every_slot_free() -> None:
    assert SendWindow(10, 1.0).available(T0) == 10
    assert SendWindow.per_second(30).available(T0) == 30


@pytest.mark.parametrize(
    ("rate", "limit", "window"),
    [(30, 30, 1.0), (2.5, 2, 0.8), (0.5, 1, 2.0), (0.1, 1, 10.0)],
)
def test_window_per_second(rate: float, limit: int, window: float) -> None:
    paced = SendWindow.per_second(rate)
    assert paced.limit == limit
    assert paced.window == pytest.approx(window)


def test_window_slot_is_held_until_a_window_after_the_answer() -> None:
    window = SendWindow(2, 1.0)
    window.started(2)
    assert window.available(T0 + 100) == 0  # slow sends hold their slots however long
    assert window.next_free() is None  # nothing answered: the outcome wakes the dispatcher
    window.finished(1, T0 + 100)
    assert window.available(T0 + 100.999) == 0
    assert window.next_free() == T0 + 101
    assert window.available(T0 + 101) == 1  # free exactly a window after the answer
    window.finished(1, T0 + 101)
    assert window.available(T0 + 101.5) == 1
    assert window.available(T0 + 102) == 2
    assert window.next_free() is None


def test_window_never_lets_limit_plus_one_sends_meet_within_a_window() -> None:
    # Whatever the hand-out to arrival delay, each send arrives between its hand-out and its
    # answer: the send after `limit` others is handed out a window after the first's answer.
    window = SendWindow(3, 1.0)
    handed: list[float] = []
    answered: list[float] = []
    now = T0
    for delay in [0.0, 0.4, 0.05, 0.3, 0.0, 0.2, 0.5, 0.01, 0.0, 0.35]:
        while window.available(now) == 0:
            now = window.next_free() or now  # every send is answered at once here
        window.started(1)
        handed.append(now)
        answered.append(now + delay)
        window.finished(1, now + delay)
        now += 0.01
    for i in range(3, len(handed)):
        assert handed[i] >= answered[i - 3] + 1.0


def test_window_answers_without_hand_outs_change_nothing() -> None:
    window = SendWindow(2, 1.0)
    window.finished(1, T0)  # an answer for what was never handed out
    assert window.available(T0) == 2
    assert window.next_free() is None


def test_window_survives_a_clock_step_back() -> None:
    window = SendWindow(2, 1.0)
    window.started(2)
    window.finished(1, T0)
    window.finished(1, T0 - 3600)  # the wall clock stepped back: freed no sooner
    assert window.available(T0 + 0.5) == 0
    assert window.available(T0 + 1) == 2


def test_pacer_busy_until_interval_passes() -> None:
    intervals = {"slow": 10.0, "fast": 0.0}
    pacer = RecipientPacer(lambda recipient: intervals.get(recipient, 1.0))
    assert pacer.busy(T0) == set()
    assert pacer.next_free() is None
    pacer.started("slow", T0)
    pacer.started("fast", T0)  # no interval: never busy
    pacer.started("other", T0)
    assert pacer.busy(T0) == {"slow", "other"}
    assert pacer.next_free() is None  # both are being sent to: their outcome wakes us
    pacer.finished("slow", T0)
    pacer.finished("other", T0)
    pacer.finished("fast", T0)
    assert pacer.next_free() == T0 + 1
    assert pacer.busy(T0 + 0.999) == {"slow", "other"}
    assert pacer.busy(T0 + 1) == {"slow"}  # free exactly at the end of the interval
    assert pacer.next_free() == T0 + 10
    assert pacer.busy(T0 + 10) == set()
    assert pacer.next_free() is None


def test_pacer_zero_interval_is_not_remembered() -> None:
    pacer = RecipientPacer(lambda _: 0.0)
    pacer.started("a", T0)
    assert pacer.next_free() is None
    assert pacer.busy(T0 - 1) == set()


def test_pacer_send_again_extends() -> None:
    pacer = RecipientPacer(lambda _: 5.0)
    pacer.started("a", T0)
    pacer.finished("a", T0)
    pacer.started("a", T0 + 3)
    pacer.finished("a", T0 + 3)
    assert pacer.busy(T0 + 7) == {"a"}
    assert pacer.busy(T0 + 8) == set()


def test_pacer_busy_while_in_flight_then_interval_after_the_answer() -> None:
    pacer = RecipientPacer(lambda _: 1.0)
    pacer.started("a", T0)
    pacer.started("a", T0)  # two deliveries to "a" in flight (two processes)
    assert pacer.busy(T0 + 100) == {"a"}  # a slow send keeps it busy past the interval
    pacer.finished("a", T0 + 100)
    assert pacer.busy(T0 + 150) == {"a"}  # one is still being sent
    pacer.finished("a", T0 + 150)
    assert pacer.busy(T0 + 150.5) == {"a"}
    assert pacer.busy(T0 + 151) == set()
    pacer.finished("unknown", T0)  # an answer for what was never paced changes nothing
    assert pacer.busy(T0 + 151) == set()


def test_pacer_busy_returns_a_copy() -> None:
    pacer = RecipientPacer(lambda _: 5.0)
    pacer.started("a", T0)
    busy = pacer.busy(T0)
    busy.add("b")
    assert pacer.busy(T0) == {"a"}
