"""A rate group's pacing written as a checkpoint and read back by another group of the same key
(another host): the window's held slots, the recipients' free times and the cool-down."""

from __future__ import annotations

import json
from pathlib import Path

from notifierd.channels.pacing import RecipientPacer, SendWindow
from notifierd.channels.rate_groups import RateGroup, rate_groups
from tests.unit.test_rate_groups import BOT, FakeMember, channels, delivery, telegram

T0 = 5000.0


def group(tmp_path: Path) -> RateGroup:
    made = rate_groups(channels(tmp_path, bot=telegram(BOT, rate_per_second=2)).values())
    return made["bot"]


def test_a_window_snapshot_counts_unanswered_sends_as_answered_now() -> None:
    window = SendWindow(3, 1.0)
    window.started(2)
    window.finished(1, T0)
    assert window.snapshot(T0 + 0.5) == [T0 + 1.0, T0 + 1.5]
    assert window.snapshot(T0 + 1.2) == [T0 + 2.2]  # the answered slot came free


def test_a_restored_window_keeps_its_own_slots_and_the_predecessors() -> None:
    window = SendWindow(3, 1.0)
    window.started(1)
    window.finished(1, T0)
    window.restore([T0 + 0.5, T0 - 1.0, T0 + 0.8], T0)  # one already past
    assert window.available(T0) == 0
    assert window.next_free() == T0 + 0.5
    assert window.available(T0 + 0.6) == 1
    assert window.available(T0 + 1.0) == 3


def test_recipients_wait_on_the_successor_as_they_did_on_the_predecessor() -> None:
    pacer = RecipientPacer(lambda _recipient: 2.0)
    pacer.started("a", T0)
    pacer.finished("a", T0)
    pacer.started("b", T0 + 1)  # not answered yet
    snapshot = pacer.snapshot(T0 + 1)
    assert snapshot == {"a": T0 + 2.0, "b": T0 + 3.0}
    successor = RecipientPacer(lambda _recipient: 2.0)
    successor.restore(snapshot | {"gone": T0}, T0 + 1)
    assert successor.busy(T0 + 1) == {"a", "b"}
    assert successor.busy(T0 + 2.5) == {"b"}


def test_a_group_goes_on_from_another_groups_checkpoint(tmp_path: Path) -> None:
    first, second = group(tmp_path), group(tmp_path)
    member = FakeMember()
    second.join(member)
    first.started([delivery("42"), delivery("43")], T0)
    first.cool_down(T0 + 30)
    second.restore(first.checkpoint(T0 + 0.1), T0 + 0.2)
    assert second.window is not None
    assert second.window.available(T0 + 0.2) == 0
    assert second.pacer.busy(T0 + 0.2) == {"42", "43"}
    assert member.cooled_until == T0 + 30
    # A cool-down that has ended is not applied again.
    later = group(tmp_path)
    later_member = FakeMember()
    later.join(later_member)
    later.restore(first.checkpoint(T0 + 40), T0 + 40)
    assert later_member.cooled_until == 0.0


def test_a_checkpoint_that_cannot_be_read_counts_as_a_full_window(tmp_path: Path) -> None:
    for bad in ("not json", "[]", json.dumps({"recipients": {"a": "x"}, "cooldown_until": 0})):
        successor = group(tmp_path)
        successor.restore(bad, T0)
        assert successor.window is not None
        assert successor.window.available(T0) == 0, bad
        assert successor.window.available(T0 + successor.window.window) == 2


def test_no_checkpoint_leaves_the_pacing_as_it_is(tmp_path: Path) -> None:
    fresh = group(tmp_path)
    fresh.restore(None, T0)
    assert fresh.window is not None and fresh.window.available(T0) == 2
