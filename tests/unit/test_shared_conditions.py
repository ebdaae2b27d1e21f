"""A channel's cool-down and misconfigured state followed live by every host (DESIGN §9, "Shared
switches"): two registries, each on its own PostgresStore of one database, as two hosts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.housekeeping import follow_switches
from notifierd.metrics import Metrics
from notifierd.store.postgres.store import PostgresStore

SECONDS = 5.0


@asynccontextmanager
async def host(url: str, name: str, channels: dict[str, Channel]) -> AsyncIterator[ChannelRegistry]:
    store = PostgresStore(url, pool_size=2, owner=name)
    await store.open()
    registry = ChannelRegistry(store, Metrics(list(channels)), log_level="info")
    registry.register_all(channels)
    try:
        yield registry
    finally:
        await registry.runner("devnull").condition.close()
        await store.close()


async def saved(registry: ChannelRegistry) -> None:
    await registry.runner("devnull").condition.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_another_hosts_cool_down_and_misconfigured_state_hold_this_host_back(
    postgres_url: str, null_channels: dict[str, Channel]
) -> None:
    async with (
        host(postgres_url, "a", null_channels) as a,
        host(postgres_url, "b", null_channels) as b,
    ):
        on_a, on_b = a.runner("devnull").condition, b.runner("devnull").condition
        assert await b.refresh() is False and on_b.cooling() == 0

        on_a.cool_down_for(30)  # a remote's Retry-After, answered to host A
        await saved(a)
        assert await b.refresh() is False
        assert 25 < on_b.cooling() <= 30
        assert b.runner("lower").condition.cooling() == 0  # the other channels go on

        on_a.refused("401: the token is refused")
        await saved(a)
        await b.refresh()
        assert on_b.misconfigured == "401: the token is refused"

        on_a.works()  # A's probe went through: B sends at full speed again, woken
        await saved(a)
        assert await b.refresh() is True
        assert on_b.misconfigured is None


async def test_the_follower_applies_another_hosts_cool_down_within_a_second(
    postgres_url: str, null_channels: dict[str, Channel]
) -> None:
    async with (
        host(postgres_url, "a", null_channels) as a,
        host(postgres_url, "b", null_channels) as b,
    ):
        follower = asyncio.get_running_loop().create_task(follow_switches(b, seconds=0.2))
        try:
            a.runner("devnull").condition.cool_down_for(60)
            set_at = time.monotonic()
            await saved(a)
            await until(lambda: b.runner("devnull").condition.cooling() > 50, "b cools down")
            assert time.monotonic() - set_at < 1.0
        finally:
            follower.cancel()
            await asyncio.wait([follower])
