"""Channel pacing: the token bucket and the per-recipient interval."""

from __future__ import annotations

import pytest

from notifierd.supervisor.pacing import RecipientPacer, TokenBucket

T0 = 5000.0


def test_bucket_starts_full() -> None:
    assert TokenBucket(10).available(T0) == 10
    assert TokenBucket(10, burst=3).available(T0) == 3
    # A slow rate still allows one at once.
    assert TokenBucket(0.1).available(T0) == 1


def test_bucket_take_and_refill() -> None:
    bucket = TokenBucket(rate=2, burst=4)
    bucket.take(4, T0)
    assert bucket.available(T0) == 0
    assert bucket.available(T0 + 0.49) == 0
    assert bucket.available(T0 + 0.5) == 1
    assert bucket.available(T0 + 1.0) == 2
    bucket.take(2, T0 + 1.0)
    assert bucket.available(T0 + 1.0) == 0


def test_bucket_refill_capped_at_burst() -> None:
    bucket = TokenBucket(rate=5, burst=3)
    bucket.take(3, T0)
    assert bucket.available(T0 + 1000) == 3


def test_bucket_rounds_down() -> None:
    bucket = TokenBucket(rate=1, burst=10)
    bucket.take(10, T0)
    assert bucket.available(T0 + 2.999) == 2


def test_bucket_overdraw_is_paid_back() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    bucket.take(5, T0)  # more than there was: the debt delays the next ones
    assert bucket.available(T0 + 3.9) == 0
    assert bucket.available(T0 + 4.0) == 1


def test_seconds_until_one() -> None:
    bucket = TokenBucket(rate=4, burst=2)
    assert bucket.seconds_until_one(T0) == 0.0
    bucket.take(2, T0)
    assert bucket.seconds_until_one(T0) == pytest.approx(0.25)
    assert bucket.seconds_until_one(T0 + 0.1) == pytest.approx(0.15)
    assert bucket.seconds_until_one(T0 + 0.25) == pytest.approx(0.0)
    assert bucket.seconds_until_one(T0 + 10) == 0.0


def test_seconds_until_one_matches_available() -> None:
    bucket = TokenBucket(rate=3, burst=1)
    bucket.take(1, T0)
    wait = bucket.seconds_until_one(T0)
    assert bucket.available(T0 + wait * 0.99) == 0
    assert bucket.available(T0 + wait + 1e-9) == 1


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


def test_bucket_survives_a_clock_step_back() -> None:
    bucket = TokenBucket(rate=1, burst=5)
    assert bucket.available(T0) == 5
    assert bucket.available(T0 - 3600) == 5
