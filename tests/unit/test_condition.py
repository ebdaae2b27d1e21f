"""A channel's condition: the cool-down shared with its workers as a monotonic deadline, and the
cool-down and misconfigured state kept in the (SQLite) Store, so that a restart keeps them."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.sharedctypes import Synchronized

import pytest

from notifierd.channels.condition import ChannelCondition
from notifierd.errors import StoreError
from notifierd.store import ChannelStateRecord
from notifierd.store.sqlite import SqliteStore


def shared() -> Synchronized[float]:
    value: Synchronized[float] = multiprocessing.get_context("spawn").Value("d", 0.0, lock=False)
    return value


class Made:
    def __init__(self, store: SqliteStore) -> None:
        self.errors: list[Exception] = []
        self.cooldown = shared()
        self.condition = ChannelCondition(
            "c", store, self.cooldown, 10.0, on_store_error=self.errors.append
        )


async def test_a_cool_down_is_a_monotonic_deadline_and_kept_in_the_store(
    store: SqliteStore,
) -> None:
    made = Made(store)
    made.condition.cool_down(store.now() + 30)
    assert 29 < made.cooldown.value - time.monotonic() <= 30
    assert 29 < made.condition.cooling() <= 30
    await made.condition.close()
    [(name, kept)] = (await store.channel_states()).items()
    assert name == "c" and kept.misconfigured is None
    assert kept.cooldown_until is not None
    assert 29 < kept.cooldown_until - store.now() <= 30


async def test_a_shorter_cool_down_changes_nothing(store: SqliteStore) -> None:
    made = Made(store)
    made.condition.cool_down_for(30)
    await made.condition.close()
    kept = await store.channel_states()
    deadline = made.cooldown.value
    made.condition.cool_down_for(5)
    assert made.cooldown.value == deadline
    assert await store.channel_states() == kept


async def test_refused_then_working_again(store: SqliteStore) -> None:
    made = Made(store)
    assert made.condition.refused("401 Unauthorized") == pytest.approx(10.0, abs=0.5)
    await made.condition.close()
    kept = (await store.channel_states())["c"]
    assert kept.misconfigured == "401 Unauthorized"
    made.condition.works()
    await made.condition.close()
    assert made.condition.misconfigured is None
    # The probe's wait still runs: only the misconfigured state is gone.
    assert await store.channel_states() == {"c": ChannelStateRecord(kept.cooldown_until, None)}


async def test_changes_made_while_a_write_is_under_way_land_in_order(store: SqliteStore) -> None:
    made = Made(store)
    made.condition.refused("401")
    made.condition.works()
    made.condition.refused("403")
    await made.condition.close()
    assert (await store.channel_states())["c"].misconfigured == "403"


async def test_a_restart_restores_what_the_store_kept(store: SqliteStore) -> None:
    before = Made(store)
    before.condition.refused("401")
    before.condition.cool_down_for(60)
    await before.condition.close()

    after = Made(store)
    assert (after.condition.misconfigured, after.condition.cooling()) == (None, 0.0)
    await after.condition.restore()
    assert after.condition.misconfigured == "401"
    assert 59 < after.condition.cooling() <= 60
    assert abs(after.cooldown.value - before.cooldown.value) < 0.5


async def test_restore_of_another_channel_or_of_nothing(store: SqliteStore) -> None:
    await store.set_channel_state("other", misconfigured="401")
    made = Made(store)
    await made.condition.restore()
    assert (made.condition.misconfigured, made.condition.cooling()) == (None, 0.0)


async def test_store_errors_are_reported(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: object, **kwargs: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "set_channel_state", failing)
    monkeypatch.setattr(store, "channel_states", failing)
    made = Made(store)
    made.condition.cool_down_for(5)
    await made.condition.close()
    await made.condition.restore()
    assert [str(e) for e in made.errors] == ["disk full", "disk full"]
    assert 4 < made.condition.cooling() <= 5  # the channel waits all the same
