"""The control commands and their arguments, over the SQLite Store and the channel registry
(paused throughout, so that no worker process starts)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from notifierd import __version__
from notifierd.channels.registry import ChannelRegistry
from notifierd.config import Channel
from notifierd.control.commands import ControlCommands
from notifierd.control.server import CommandError
from notifierd.maintenance import Maintenance
from notifierd.messages import Outcome
from notifierd.metrics import Metrics
from notifierd.retry import RetryPolicy
from notifierd.states import OutcomeKind
from notifierd.store import NewJob
from notifierd.store.sqlite import SqliteStore

NOW = 1_700_000_000.0


@pytest.fixture
async def commands(
    store: SqliteStore, null_channels: dict[str, Channel]
) -> AsyncIterator[ControlCommands]:
    registry = ChannelRegistry(store, Metrics(list(null_channels)), log_level="info")
    registry.register_all(null_channels)
    maintenance = Maintenance(store, registry)
    await maintenance.pause()
    yield ControlCommands(store, registry, maintenance)
    await registry.stop(grace=1.0)


async def refusal(commands: ControlCommands, command: str, args: dict[str, Any]) -> str:
    with pytest.raises(CommandError) as refused:
        await commands.table()[command](args)
    return str(refused.value)


@pytest.mark.parametrize(
    ("command", "args", "sentence"),
    [
        ("stop", {}, "there is no channel named None"),
        ("stop", {"channel": "nope"}, "there is no channel named 'nope'"),
        ("start", {"channel": 5}, "there is no channel named 5"),
        ("jobs", {"channel": "nope", "state": "bad"}, "there is no channel named 'nope'"),
        ("jobs", {"state": "nonsense"}, "unknown state 'nonsense'"),
        ("deliveries", {"limit": 0}, "limit must be a positive whole number"),
        ("deliveries", {"limit": "5"}, "limit must be a positive whole number"),
        ("jobs", {"limit": True}, "limit must be a positive whole number"),
        ("retry", {}, "name job ids, delivery ids, or a channel and a state"),
        ("retry", {"state": "failed"}, "name job ids, delivery ids, or a channel and a state"),
        ("retry", {"jobs": []}, "ids must be a list of positive whole numbers"),
        ("retry", {"jobs": None}, "ids must be a list of positive whole numbers"),
        ("retry", {"deliveries": [1, -2]}, "ids must be a list of positive whole numbers"),
        ("retry", {"jobs": [1.5]}, "ids must be a list of positive whole numbers"),
        ("retry", {"channel": "nope"}, "there is no channel named 'nope'"),
        (
            "retry",
            {"channel": "devnull", "state": "queued"},
            "only dead, failed or expired deliveries can be retried",
        ),
        # Were ignored before: one of them would be silently dropped.
        ("retry", {"jobs": [1], "deliveries": [2]}, "give job ids or delivery ids, not both"),
        (
            "retry",
            {"jobs": [1], "channel": "devnull"},
            "give ids, or a channel (and a state), not both",
        ),
        ("status", {"verbose": True}, "unknown argument 'verbose'"),
        ("nodes", {"host": "a"}, "unknown argument 'host'"),
        ("drain", {"node": "a"}, "unknown argument 'node'"),
        ("undrain", {"all": True}, "unknown argument 'all'"),
        ("stop", {"channel": "devnull", "force": True}, "unknown argument 'force'"),
    ],
)
async def test_bad_arguments_get_one_sentence(
    commands: ControlCommands, command: str, args: dict[str, Any], sentence: str
) -> None:
    assert await refusal(commands, command, args) == sentence


async def test_status_of_the_paused_channels(commands: ControlCommands, store: SqliteStore) -> None:
    status = await commands.status({})

    assert (status["paused"], status["stopping"]) == (True, False)
    assert [c["name"] for c in status["channels"]] == ["devnull", "lower", "fanout"]
    fanout = status["channels"][2]
    assert (fanout["worker"], fanout["state"], fanout["pids"], fanout["queued"]) == (
        "null",
        "paused",
        [],
        0,
    )


async def test_status_and_nodes_show_this_host(
    commands: ControlCommands, store: SqliteStore
) -> None:
    await store.add(NewJob("devnull", "held", [""], 0, 3600), NOW)
    assert len((await store.claim("devnull", 10, NOW, 30)).deliveries) == 1
    status = await commands.status({})
    assert status["node_id"] == store.owner
    [me] = status["nodes"]
    assert (me["node_id"], me["this_host"], me["draining"], me["leader"], me["leases"]) == (
        store.owner,
        True,
        False,
        True,
        1,
    )
    assert me["rate_keys"] == []
    # This host's runtime is what it runs now, not the last it published.
    assert me["runtime"] == {
        "pid": os.getpid(),
        "version": __version__,
        "channels": {"devnull": "paused", "lower": "paused", "fanout": "paused"},
    }
    assert await commands.nodes({}) == {"node_id": store.owner, "nodes": status["nodes"]}


async def test_drain_and_undrain(commands: ControlCommands, store: SqliteStore) -> None:
    await store.add(NewJob("devnull", "one", [""], 0, 3600), NOW)
    await store.add(NewJob("devnull", "two", [""], 0, 3600), NOW)
    held = (await store.claim("devnull", 1, NOW, 30)).deliveries
    drained = await commands.drain({})
    assert drained == {"node_id": store.owner, "draining": True, "leases": 1}
    assert (await commands.nodes({}))["nodes"][0]["draining"] is True
    assert (await store.claim("devnull", 10, NOW, 30)).deliveries == []
    outcome = Outcome(held[0].id, held[0].lease_token, OutcomeKind.DELIVERED)
    assert await store.complete([outcome], RetryPolicy(), NOW) == ["delivered"]
    assert await commands.undrain({}) == {"node_id": store.owner, "draining": False}
    assert (await commands.status({}))["nodes"][0]["draining"] is False
    assert len((await store.claim("devnull", 10, NOW, 30)).deliveries) == 1


async def test_stop_and_start_while_paused(commands: ControlCommands, store: SqliteStore) -> None:
    stopped = await commands.stop({"channel": "lower"})
    assert stopped == {"channel": "lower", "state": "stopped", "kept_across_restarts": True}
    assert await store.get_flags() == {"paused": "1", "stopped:lower": "1"}

    started = await commands.start({"channel": "lower"})
    assert started == {"channel": "lower", "state": "paused"}
    assert await store.get_flags() == {"paused": "1"}


async def failed_job(store: SqliteStore, channel: Channel, message: str) -> int:
    job_id = await store.add(NewJob(channel.name, message, channel.recipients, 0, 3600), NOW)
    claimed = await store.claim(channel.name, 10, NOW, 30)
    refusals = [
        Outcome(d.id, d.lease_token, OutcomeKind.PERMANENT, error="refused")
        for d in claimed.deliveries
    ]
    await store.complete(refusals, channel.retry, NOW)
    return job_id


async def test_listing_and_retry(
    commands: ControlCommands, store: SqliteStore, null_channels: dict[str, Channel]
) -> None:
    first = await failed_job(store, null_channels["devnull"], "one")
    second = await failed_job(store, null_channels["devnull"], "two")
    third = await failed_job(store, null_channels["fanout"], "three")

    jobs = await commands.jobs({"channel": "devnull", "state": "failed", "limit": 1})
    assert [(job["id"], job["states"]) for job in jobs] == [(second, {"failed": 1})]
    deliveries = await commands.deliveries({"channel": "fanout"})
    assert [(d["job_id"], d["state"]) for d in deliveries] == [(third, "failed")] * 3

    by_id = await commands.retry({"jobs": [first, first, 999]})
    assert by_id == {
        "requeued": 1,
        "results": [
            {"id": first, "found": True, "requeued": 1, "untouched": {}},
            {"id": 999, "found": False, "requeued": 0, "untouched": {}},
        ],
    }
    by_channel = await commands.retry({"channel": "fanout", "state": "failed"})
    assert by_channel == {"requeued": 3, "results": []}
    everything = await commands.retry({"channel": "devnull"})
    assert everything == {"requeued": 1, "results": []}  # the second job's
