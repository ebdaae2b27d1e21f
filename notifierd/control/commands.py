"""The control socket's commands (`notifierctl`), each with its arguments as a model.

A bad argument is answered with one sentence that names it (`CommandError`); an argument a
command does not take is refused, not ignored.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from typing import Annotated, Any, ClassVar, Self, TypeVar

import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from notifierd.channels.registry import ChannelRegistry
from notifierd.control.server import Command, CommandError
from notifierd.maintenance import Maintenance
from notifierd.node import node_rows, runtime
from notifierd.states import RETRYABLE_STATES, DeliveryState
from notifierd.store import Store, StoreCounts

log = structlog.get_logger("notifierd")

STATES = frozenset(state.value for state in DeliveryState)
RETRYABLE = frozenset(state.value for state in RETRYABLE_STATES)
NO_SUCH_CHANNEL = "there is no channel named {value!r}"
IDS = "ids must be a list of positive whole numbers"

PositiveInt = Annotated[int, Field(gt=0)]
Ids = Annotated[list[PositiveInt], Field(min_length=1)]


class Arguments(BaseModel):
    """A command's arguments: JSON's own types (no "5" for 5), nothing unknown. Validated
    with the configured channels' names as context."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    #: The sentence a bad value of each field gets; `{value!r}` is the value given.
    complaints: ClassVar[dict[str, str]] = {}


def _known_channel(name: str | None, info: ValidationInfo) -> str | None:
    channels: Collection[str] = (info.context or {}).get("channels", ())
    if name is not None and name not in channels:
        raise ValueError("unknown channel")
    return name


class NoArguments(Arguments):
    """`status`, `pause`, `resume`, `nodes`, `drain`, `undrain`."""


class ChannelArguments(Arguments):
    """`stop` and `start`."""

    complaints = {"channel": NO_SUCH_CHANNEL}
    channel: str

    _channel = field_validator("channel")(_known_channel)


class ListingArguments(Arguments):
    """`jobs` and `deliveries`: the newest, of a channel, with a delivery in a state."""

    complaints = {
        "channel": NO_SUCH_CHANNEL,
        "state": "unknown state {value!r}",
        "limit": "limit must be a positive whole number",
    }
    channel: str | None = None
    state: str | None = None
    limit: PositiveInt = 50

    _channel = field_validator("channel")(_known_channel)

    @field_validator("state")
    @classmethod
    def _known_state(cls, state: str | None) -> str | None:
        if state is not None and state not in STATES:
            raise ValueError("unknown state")
        return state


class RetryArguments(Arguments):
    """`retry`: by job ids (`jobs`), delivery ids (`deliveries`), or a channel and maybe a
    state (every dead, failed or expired delivery of the channel without one)."""

    complaints = {
        "jobs": IDS,
        "deliveries": IDS,
        "channel": NO_SUCH_CHANNEL,
        "state": "only dead, failed or expired deliveries can be retried",
    }
    jobs: Ids | None = None
    deliveries: Ids | None = None
    channel: str | None = None
    state: str | None = None

    _channel = field_validator("channel")(_known_channel)

    @field_validator("state")
    @classmethod
    def _retryable(cls, state: str | None) -> str | None:
        if state is not None and state not in RETRYABLE:
            raise ValueError("not retryable")
        return state

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        named = self.model_fields_set & {"jobs", "deliveries"}
        if len(named) == 2:
            raise ValueError("give job ids or delivery ids, not both")
        if named and self.ids is None:
            raise ValueError(IDS)  # "jobs": null
        if named and (self.channel is not None or self.state is not None):
            raise ValueError("give ids, or a channel (and a state), not both")
        if not named and self.channel is None:
            raise ValueError("name job ids, delivery ids, or a channel and a state")
        return self

    @property
    def ids(self) -> list[int] | None:
        return self.jobs if self.jobs is not None else self.deliveries


A = TypeVar("A", bound=Arguments)


def parse(model: type[A], args: dict[str, Any], channels: Collection[str]) -> A:
    """`args` as `model`, a channel they name among `channels`; else `CommandError`."""
    try:
        return model.model_validate(args, context={"channels": channels})
    except ValidationError as exc:
        raise CommandError(_complaint(model, exc.errors()[0])) from None


def _complaint(model: type[Arguments], error: ErrorDetails) -> str:
    if not error["loc"]:
        return str(error.get("ctx", {}).get("error", error["msg"]))
    field = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown argument {field!r}"
    value = None if error["type"] == "missing" else error["input"]
    return model.complaints[field].format(value=value)


class ControlCommands:
    """What `notifierctl` asks of the daemon, over the control socket."""

    def __init__(self, store: Store, channels: ChannelRegistry, maintenance: Maintenance) -> None:
        self._store = store
        self._channels = channels
        self._maintenance = maintenance

    def table(self) -> dict[str, Command]:
        """The commands by name, for the `ControlServer`."""
        return {
            "status": self.status,
            "pause": self.pause,
            "resume": self.resume,
            "stop": self.stop,
            "start": self.start,
            "jobs": self.jobs,
            "deliveries": self.deliveries,
            "retry": self.retry,
            "nodes": self.nodes,
            "drain": self.drain,
            "undrain": self.undrain,
        }

    def _parse(self, model: type[A], args: dict[str, Any]) -> A:
        return parse(model, args, self._channels.names)

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        self._parse(NoArguments, args)
        counts = await self._store.counts(self._store.now())
        maintenance = self._maintenance
        channels = []
        for name in self._channels.names:
            description = self._channels.describe(name, maintenance)
            counted = counts.get(name, StoreCounts()).by_state()
            # The counts between the pids and the last error, as `notifierctl status --json`
            # has always shown them.
            last_error = description.pop("last_error")
            channels.append({**description, **counted, "last_error": last_error})
        paused, stopping = maintenance.paused, maintenance.stopping
        return {"paused": paused, "stopping": stopping, "channels": channels, **await self._hosts()}

    async def _hosts(self) -> dict[str, Any]:
        """This host's node id, and every host using the Store."""
        mine = runtime(self._channels.states(self._maintenance))
        nodes = node_rows(await self._store.nodes(), self._store.owner, mine)
        return {"node_id": self._store.owner, "nodes": nodes}

    async def nodes(self, args: dict[str, Any]) -> dict[str, Any]:
        self._parse(NoArguments, args)
        return await self._hosts()

    async def drain(self, args: dict[str, Any]) -> dict[str, Any]:
        """This host claims nothing new; what it holds it finishes."""
        self._parse(NoArguments, args)
        await self._store.set_draining(True)
        log.warning("node.draining", node_id=self._store.owner, until="notifierctl undrain")
        nodes = (await self._hosts())["nodes"]
        # None: this host's node is not listed (declared dead a moment ago, back soon).
        leases = next((node["leases"] for node in nodes if node["this_host"]), None)
        return {"node_id": self._store.owner, "draining": True, "leases": leases}

    async def undrain(self, args: dict[str, Any]) -> dict[str, Any]:
        self._parse(NoArguments, args)
        await self._store.set_draining(False)
        log.warning("node.undrained", node_id=self._store.owner)
        self._channels.wake_all()
        return {"node_id": self._store.owner, "draining": False}

    async def pause(self, args: dict[str, Any]) -> dict[str, Any]:
        self._parse(NoArguments, args)
        await self._maintenance.pause()
        return {"paused": True}

    async def resume(self, args: dict[str, Any]) -> dict[str, Any]:
        self._parse(NoArguments, args)
        await self._maintenance.resume()
        return {"paused": False}

    async def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self._parse(ChannelArguments, args).channel
        await self._maintenance.stop_channel(name)
        return {"channel": name, "state": "stopped", "kept_across_restarts": True}

    async def start(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self._parse(ChannelArguments, args).channel
        await self._maintenance.start_channel(name)
        return {"channel": name, "state": self._channels.state(name, self._maintenance).value}

    async def jobs(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        listing = self._parse(ListingArguments, args)
        jobs = await self._store.list_jobs(listing.channel, listing.state, listing.limit)
        return [asdict(job) for job in jobs]

    async def deliveries(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        listing = self._parse(ListingArguments, args)
        records = await self._store.list_deliveries(listing.channel, listing.state, listing.limit)
        return [asdict(record) for record in records]

    async def retry(self, args: dict[str, Any]) -> dict[str, Any]:
        retry = self._parse(RetryArguments, args)
        ttl_for = {name: float(c.ttl) for name, c in self._channels.channels.items()}
        now = self._store.now()
        results: list[dict[str, Any]] = []
        if retry.ids is not None:
            # Each id once: a repeated one would report "nothing to retry" for what it requeued.
            unique = list(dict.fromkeys(retry.ids))
            by_job = retry.jobs is not None
            done = await self._store.requeue_each(now, unique, by_job=by_job, ttl_for=ttl_for)
            for item, retried in done.items():
                if retried is None:
                    results.append({"id": item, "found": False, "requeued": 0, "untouched": {}})
                else:
                    results.append({"id": item, "found": True, **asdict(retried)})
            count = sum(result["requeued"] for result in results)
        else:
            count = await self._store.requeue(now, (), retry.channel, retry.state, ttl_for)
        self._channels.wake_all()
        return {"requeued": count, "results": results}
