"""The contract on what hosts share besides the queue: the switches and their version, the
channels' states, the clock, and the wake-up hook."""

from __future__ import annotations

import time

from notifierd.states import OutcomeKind
from notifierd.store import ChannelStateRecord, Store
from tests.store_contract.backends import UrlBackend
from tests.store_contract.helpers import (
    LEASE,
    OTHER,
    POLICY,
    T0,
    claim_one,
    eventually,
    job,
    outcome,
)


async def test_flags_are_set_and_removed(store: Store) -> None:
    assert await store.get_flags() == {}
    await store.set_flag("paused", "1")
    await store.set_flag("stopped:c", "1")
    await store.set_flag("paused", "2")
    assert await store.get_flags() == {"paused": "2", "stopped:c": "1"}
    await store.set_flag("paused", None)
    await store.set_flag("never-set", None)
    assert await store.get_flags() == {"stopped:c": "1"}


async def test_the_flags_version_moves_with_every_change_on_any_store(
    store: Store, backend: UrlBackend
) -> None:
    start = await store.flags_version()
    assert await store.flags_version() == start  # nothing changed, nothing moves
    seen = {start}
    async with backend.store(OTHER) as other:
        for change in (("paused", "1"), ("stopped:c", "1"), ("paused", None)):
            await other.set_flag(*change)
            version = await store.flags_version()
            assert version not in seen, change
            seen.add(version)
            assert await other.flags_version() == version
        assert await store.get_flags() == {"stopped:c": "1"}


async def test_channel_states_are_kept_part_by_part(store: Store, backend: UrlBackend) -> None:
    assert await store.channel_states() == {}
    await store.set_channel_state("c", cooldown_until=T0 + 30)
    await store.set_channel_state("c", misconfigured="the bot token was refused")
    await store.set_channel_state("d", cooldown_until=T0 + 5, misconfigured=None)
    async with backend.store(OTHER) as other:
        assert await other.channel_states() == {
            "c": ChannelStateRecord(T0 + 30, "the bot token was refused"),
            "d": ChannelStateRecord(T0 + 5, None),
        }
        await other.set_channel_state("c", cooldown_until=None)
        await other.set_channel_state("d", cooldown_until=None)
    assert await store.channel_states() == {
        "c": ChannelStateRecord(None, "the bot token was refused")
    }
    await store.set_channel_state("c", misconfigured=None)
    assert await store.channel_states() == {}


async def test_the_clock_is_seconds_since_the_epoch(store: Store) -> None:
    first = store.now()
    assert abs(first - time.time()) < 60
    assert store.now() >= first


async def test_new_work_wakes_its_channel(store: Store) -> None:
    woken: list[str] = []
    store.on_wake(woken.append)
    await store.add(job(channel="c"), T0)
    await eventually(lambda: "c" in woken, "a wake-up for an added job")
    delivery = await claim_one(store, T0)
    await store.complete([outcome(delivery, OutcomeKind.PERMANENT, "no")], POLICY, T0)
    woken.clear()
    assert await store.requeue(T0 + 1, channel="c") == 1
    await eventually(lambda: "c" in woken, "a wake-up for a retried delivery")
    await claim_one(store, T0 + 1)
    woken.clear()
    assert await store.recover(T0 + 2, owner=store.owner) == 1
    await eventually(lambda: "c" in woken, "a wake-up for a recovered lease")
    assert set(woken) == {"c"}
    assert (await store.claim("c", 10, T0 + 2, LEASE)).deliveries != []
