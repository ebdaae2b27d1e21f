"""The contract on rate keys: one owner dispatches a key at a time under an epoch fence, and the
pacing state it saved reaches the next owner. SQLite serves one daemon per database, so it
grants every key to whoever asks; the exclusive hold is asserted on the shared backend."""

from __future__ import annotations

import time

from notifierd.store import Store
from notifierd.store.postgres.store import PostgresStore
from tests.store_contract.backends import UrlBackend
from tests.store_contract.helpers import OTHER

KEY = "telegram:bot-1"
LEASE = 30.0


def shared(store: Store) -> bool:
    return isinstance(store, PostgresStore)


async def test_a_key_is_held_renewed_and_kept_under_its_epoch(store: Store) -> None:
    lease = await store.acquire_rate_key(KEY, LEASE)
    assert lease is not None
    assert lease.checkpoint is None
    again = await store.acquire_rate_key(KEY, LEASE)
    assert again is not None and again.epoch == lease.epoch  # still this Store's: same epoch
    assert await store.renew_rate_key(KEY, lease.epoch, '{"n": 1}', LEASE)
    assert not await store.renew_rate_key(KEY, lease.epoch + 1, '{"n": 2}', LEASE)
    assert not await store.renew_rate_key("never-acquired", 1, "{}", LEASE)


async def test_a_released_key_changes_epoch_and_hands_on_its_checkpoint(store: Store) -> None:
    lease = await store.acquire_rate_key(KEY, LEASE)
    assert lease is not None
    await store.release_rate_key(KEY, lease.epoch, '{"saved": true}')
    assert not await store.renew_rate_key(KEY, lease.epoch, "{}", LEASE)  # released
    taken = await store.acquire_rate_key(KEY, LEASE)
    assert taken is not None
    assert taken.epoch > lease.epoch
    assert taken.checkpoint == '{"saved": true}'


async def test_one_owner_at_a_time_on_a_shared_backend(store: Store, backend: UrlBackend) -> None:
    lease = await store.acquire_rate_key(KEY, LEASE)
    assert lease is not None
    assert await store.renew_rate_key(KEY, lease.epoch, '{"from": "a"}', LEASE)
    async with backend.store(OTHER) as other:
        theirs = await other.acquire_rate_key(KEY, LEASE)
        if not shared(store):
            assert theirs is not None  # SQLite: one daemon per database, it always holds
            return
        assert theirs is None  # a live owner holds it
        assert await other.acquire_rate_key("telegram:bot-2", LEASE) is not None  # another key
        await store.release_rate_key(KEY, lease.epoch, '{"from": "a", "last": true}')
        theirs = await other.acquire_rate_key(KEY, LEASE)
        assert theirs is not None and theirs.epoch == lease.epoch + 1
        assert theirs.checkpoint == '{"from": "a", "last": true}'
        assert await store.acquire_rate_key(KEY, LEASE) is None
        assert not await store.renew_rate_key(KEY, lease.epoch, "{}", LEASE)  # fenced


async def test_a_lapsed_lease_is_taken_over_with_its_checkpoint(
    store: Store, backend: UrlBackend
) -> None:
    lease = await store.acquire_rate_key(KEY, 0.3)
    assert lease is not None
    assert await store.renew_rate_key(KEY, lease.epoch, '{"w": [1]}', 0.3)
    async with backend.store(OTHER) as other:
        deadline = time.monotonic() + 10.0
        theirs = await other.acquire_rate_key(KEY, LEASE)
        while theirs is None and time.monotonic() < deadline:
            theirs = await other.acquire_rate_key(KEY, LEASE)
        assert theirs is not None, "the lapsed lease was never taken over"
        if shared(store):
            assert theirs.epoch == lease.epoch + 1
            assert theirs.checkpoint == '{"w": [1]}'
            # The old holder's renewal is refused, even though it still runs.
            assert not await store.renew_rate_key(KEY, lease.epoch, "{}", LEASE)


async def test_a_dead_owners_key_is_taken_without_waiting_for_its_lease(
    backend: UrlBackend,
) -> None:
    async with backend.store(OTHER) as other:
        async with backend.store("node-c:3:0000000c") as dead:
            held = await dead.acquire_rate_key(KEY, 3600.0)
            assert held is not None
            await dead.renew_rate_key(KEY, held.epoch, '{"c": 1}', 3600.0)
            if shared(dead):
                assert await other.acquire_rate_key(KEY, LEASE) is None
        # Closed without a release: a shared backend's node row is gone with it.
        theirs = await other.acquire_rate_key(KEY, LEASE)
        assert theirs is not None
        if shared(other):
            assert theirs.epoch == held.epoch + 1 and theirs.checkpoint == '{"c": 1}'
