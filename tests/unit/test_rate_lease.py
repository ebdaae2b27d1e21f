"""Rate keys across hosts, in one process: two PostgreSQL Stores on one database stand for two
hosts, each with the channel's parts and the key's lease (`KeyLease`) as its registry makes
them. One host dispatches the key; the other takes it over when the first is declared dead,
and goes on from its checkpoint without a burst above the send window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from notifierd.channels.rate_lease import KeyLease
from notifierd.config import Channel
from notifierd.store.postgres.store import PostgresStore
from tests.store_contract.helpers import eventually
from tests.unit.channel_parts import ChannelParts
from tests.unit.test_rate_groups import channels, telegram

RATE = 3.0  # a window of 3 sends a second
CHATS = list(range(1, 31))


class Host:
    def __init__(self, channel: Channel, store: PostgresStore, lease_seconds: float = 30.0) -> None:
        self.store = store
        self.parts = ChannelParts(channel, store)
        self.lease = KeyLease(store, self.parts.rate, lease_seconds=lease_seconds)
        self.parts.rate.lease = self.lease
        self.parts.start_workers()
        #: (Store clock, how many) of each hand-out.
        self.handed: list[tuple[float, int]] = []

    async def dispatch(self) -> float | None:
        before = sum(len(b) for w in self.parts.workers for b in w.batches)
        wait = await self.parts.dispatcher.dispatch_once()
        after = sum(len(b) for w in self.parts.workers for b in w.batches)
        if after > before:
            self.handed.append((self.store.now(), after - before))
        return wait

    @property
    def sent(self) -> int:
        return sum(count for _, count in self.handed)


@pytest.fixture
def channel(tmp_path: Path) -> Channel:
    entry = telegram(chat_id=CHATS, rate_per_second=RATE, chat_interval=0)
    return channels(tmp_path, bot=entry | {"prefetch": 100})["bot"]


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    first = PostgresStore(postgres_url, pool_size=2)
    second = PostgresStore(postgres_url, pool_size=2)
    async with first, second:
        yield first, second


async def declare_dead(url: str, owner: str) -> None:
    """What the reaper does to a host that stopped heart-beating: its node row goes."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM nodes WHERE node_id = $1", owner)
    finally:
        await conn.close()


async def test_one_host_dispatches_and_its_successor_goes_on_from_the_checkpoint(
    channel: Channel, stores: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    a, b = Host(channel, stores[0]), Host(channel, stores[1])
    await a.parts.add()  # one delivery per chat: 30
    await a.lease.step()
    await b.lease.step()
    assert a.lease.held and not b.lease.held

    await a.dispatch()
    assert a.sent == RATE  # the window's worth
    for _ in range(3):
        assert await b.dispatch() is None
        await b.lease.step()
    assert b.sent == 0 and not b.lease.held  # the key is a's: b claims nothing
    assert await a.parts.states() == ["leased"] * 3 + ["queued"] * 27

    await a.lease.step()  # a renewal: the checkpoint holds a's three sends
    await declare_dead(postgres_url, a.store.owner)
    await b.lease.step()
    assert b.lease.held and b.lease.epoch == (a.lease.epoch or 0) + 1

    first_sent = a.handed[0][0]
    deadline = b.store.now() + 10.0
    while b.sent < RATE and b.store.now() < deadline:
        wait = await b.dispatch()
        assert wait is not None and wait <= 1.0
        await asyncio.sleep(wait)  # the time the dispatcher asks for, as its loop would
    assert b.sent == RATE
    # Nothing of b's went within a window of a's sends (the clocks are the database's, read
    # through two sessions: a few milliseconds apart at most).
    assert b.handed[0][0] >= first_sent + 1.0 - 0.05

    await a.lease.step()
    assert not a.lease.held  # the epoch moved: a learns it lost the key


async def test_a_host_whose_lease_lapsed_starts_no_send(
    channel: Channel, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    # a stays alive (its node row too: the Store would let it claim), but its lease ran out
    # and b took the key: a's dispatcher claims nothing.
    a, b = Host(channel, stores[0], lease_seconds=0.3), Host(channel, stores[1])
    await a.parts.add()
    await a.lease.step()
    assert a.lease.held
    deadline = b.store.now() + 10.0
    while not b.lease.held and b.store.now() < deadline:
        await b.lease.step()
    assert b.lease.held
    await a.lease.step()
    assert not a.lease.held and a.lease.epoch is None  # the renewal was refused
    assert await a.dispatch() is None
    assert a.sent == 0  # its window is empty: only the lost key holds it back
    assert await a.parts.states() == ["queued"] * len(CHATS)
    await b.dispatch()
    assert b.sent == RATE


async def test_a_released_key_goes_to_the_other_host_with_its_pacing(
    channel: Channel, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    a, b = Host(channel, stores[0]), Host(channel, stores[1])
    await a.parts.add()
    await a.lease.step()
    await a.dispatch()
    await a.lease.close()  # a clean stop: the key let go with the last checkpoint
    await b.lease.step()
    assert b.lease.held
    assert await b.dispatch() is not None
    assert b.sent == 0  # a's three sends still fill the window


async def test_a_hold_that_lapsed_unrenewed_wakes_the_channels_when_renewed(
    channel: Channel, stores: tuple[PostgresStore, PostgresStore]
) -> None:
    # The Store out of reach past the lease: this host stops; once a renewal goes through (no
    # one took the key meanwhile), its dispatchers are woken rather than left to their poll.
    a = Host(channel, stores[0], lease_seconds=0.2)
    await a.lease.step()
    woken = a.parts.member.woken
    await eventually(lambda: not a.lease.held, "the hold lapsing on its own deadline")
    await a.lease.step()
    assert a.lease.held
    assert a.parts.member.woken == woken + 1
