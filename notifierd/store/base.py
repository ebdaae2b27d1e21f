"""The Store port (DESIGN §3): the durable queue of deliveries, the switches and the channels'
shared states, as the parent process sees them. Workers never see it.

A backend (`store.sqlite`, later `store.postgres`) implements `Store`; `store.factory.open_store`
picks one from a URL. Nothing here imports a backend, the channel file or the workers, and no
backend imports them either: `import notifierd.store.base` loads none of them (a test checks).
Every backend passes the contract suite in `tests/store_contract/`. The records the port takes
and returns are in `store.records` (and importable from here).

What every backend promises:

- A method that changes state returns only once the change is durable (committed).
- Times are on the Store's clock, `Store.now()`: every `now` argument, `due_at`, `expires_at`,
  `leased_until`, `cooldown_until`. A process that waits on one of them turns it into a
  monotonic deadline (`time.monotonic() + (stored - store.now())`), so no other clock decides.
- A lease records the Store's `owner` (a node id, `host:pid:random`, never reused) and a token;
  an outcome whose token is not the delivery's current one is ignored (fencing).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from enum import Enum
from types import TracebackType
from typing import Any, NamedTuple

import structlog

from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.store.records import (
    AttemptRecord,
    ChannelStateRecord,
    ClaimResult,
    DeliveryRecord,
    JobRecord,
    JobSummary,
    Lapsed,
    NodeRecord,
    RateKeyLease,
    Retried,
    StoreCounts,
)

__all__ = [
    "DEFAULT_DEAD_AFTER",
    "KEEP",
    "AttemptRecord",
    "ChannelStateRecord",
    "ClaimResult",
    "DeliveryRecord",
    "JobRecord",
    "JobSummary",
    "Keep",
    "Lapsed",
    "NewJob",
    "NodeRecord",
    "RateKeyLease",
    "Retried",
    "Store",
    "StoreCounts",
    "WakeCallback",
    "new_owner",
]

log = structlog.get_logger("notifierd.store")

#: Called with a channel's name when new work for it may be due (`Store.on_wake`).
WakeCallback = Callable[[str], None]
#: Seconds without a heartbeat after which a host sharing the Store is declared dead.
DEFAULT_DEAD_AFTER = 10.0


def new_owner() -> str:
    """A node id for the leases of one Store: `host:pid:random`, never the same twice."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Keep(Enum):
    """`Store.set_channel_state`'s default: leave this part of the state as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


class NewJob(NamedTuple):  # one per request: cheaper to make than a frozen dataclass
    """A message accepted for a channel, fanned out to `recipients` (one delivery each)."""

    channel: str
    message: str
    recipients: Sequence[str]
    delay: float
    ttl: float
    #: (key, digest of message and delay) of an idempotent send (`api.idempotency`), or None.
    idempotency: tuple[str, str] | None = None


class Store(ABC):
    """Durable queue of deliveries, the switches (maintenance, stopped channels) and the
    channels' shared states. Used as `async with store:` it is opened and closed."""

    def __init__(self, owner: str | None = None) -> None:
        #: The node id every lease this Store makes records.
        self.owner = owner or new_owner()
        self._wake_callbacks: list[WakeCallback] = []

    # -- life cycle -------------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect, bring the schema up to date. Raises `StoreError` (`StoreUnusable` when an
        operator must act first)."""

    @abstractmethod
    async def close(self) -> None:
        """Wait for the writes under way, then disconnect."""

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data is, for the log (a path; a URL without its password)."""

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """The version of the backend's schema this code writes (its own numbering)."""

    @abstractmethod
    def now(self) -> float:
        """The Store's clock, in seconds since the epoch: the time every stored time is on."""

    def fence_deadline(self) -> float:
        """The `time.monotonic()` until which what this host leases is its own to start: past
        it, the other hosts of a shared Store may have declared this one dead and handed its
        leases out again (PostgreSQL: half of `dead_after` after its last heartbeat). One
        host alone: never."""
        return math.inf

    def on_wake(self, callback: WakeCallback) -> None:
        """Have `callback(channel)` called, on the event loop, when new work for `channel` may
        be due: after an add, an operator's retry or a recovery commits (and, with a shared
        backend, when another host's does). A hint to claim now rather than at the next
        poll; never the only way work is found."""
        self._wake_callbacks.append(callback)

    def _wake(self, channels: Iterable[str]) -> None:
        """Backends call this once their change committed, each channel once."""
        for channel in channels:
            for callback in self._wake_callbacks:
                try:
                    callback(channel)
                except Exception:
                    log.exception("store.wake_failed", channel=channel)

    # -- deliveries ---------------------------------------------------------------------------

    @abstractmethod
    async def recover(self, now: float, owner: str | None = None) -> int:
        """Leases of an owner that is gone go back to queued, their attempts still counted.
        `owner` None: every owner this backend knows cannot be alive (SQLite: all of them,
        the state lock lets one daemon use a database, so a lease found at start-up is a dead
        process's). Returns how many."""

    @abstractmethod
    async def add(self, job: NewJob, now: float) -> int:
        """Store a job and its deliveries; returns the job id once committed. A job with an
        idempotency key already stored for its channel is not stored again: its first job's
        id is returned, or `IdempotencyKeyReused` raised when the digests differ."""

    @abstractmethod
    async def claim(
        self,
        channel: str,
        limit: int,
        now: float,
        lease_seconds: float,
        exclude_recipients: Collection[str] = (),
    ) -> ClaimResult:
        """Lease up to `limit` due, unexpired deliveries of `channel`, oldest due first, to
        this Store's owner, under one new token. Two claims never lease the same delivery."""

    @abstractmethod
    async def complete(
        self, outcomes: Sequence[Outcome], policy: RetryPolicy, now: float
    ) -> list[str | None]:
        """Apply worker outcomes (DESIGN §2). An outcome whose lease token is not current is
        ignored. Returns, per outcome, the new state, or None when it was ignored."""

    @abstractmethod
    async def expire(self, now: float) -> dict[str, int]:
        """Queued deliveries past their `expires_at` end EXPIRED. Returns how many, by
        channel."""

    @abstractmethod
    async def lapse_leases(self, now: float, policies: Mapping[str, RetryPolicy]) -> list[Lapsed]:
        """Leases past their end: the delivery is handed out again (the attempt counted)."""

    @abstractmethod
    async def has_pending(self, channel: str) -> bool:
        """Whether `channel` has jobs (SPEC): a delivery queued (due or not) or leased."""

    @abstractmethod
    async def counts(self, now: float) -> dict[str, StoreCounts]:
        """Per channel, deliveries by state."""

    # -- the operator's view ------------------------------------------------------------------

    @abstractmethod
    async def list_deliveries(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[DeliveryRecord]:
        """The most recently changed deliveries, newest first."""

    @abstractmethod
    async def requeue(
        self,
        now: float,
        ids: Collection[int] = (),
        channel: str | None = None,
        state: str | None = None,
        ttl_for: Mapping[str, float] | None = None,
    ) -> int:
        """Operator's retry: terminal (failed, dead, expired) deliveries go back to queued,
        with their attempts reset and a fresh time-to-live. Returns how many."""

    @abstractmethod
    async def requeue_each(
        self, now: float, ids: Sequence[int], *, by_job: bool, ttl_for: Mapping[str, float]
    ) -> dict[int, Retried | None]:
        """Operator's retry, as `requeue`, of each job (`by_job`) or delivery in `ids`.
        Returns what it did per id; None for an id that is unknown (or pruned)."""

    @abstractmethod
    async def list_jobs(
        self, channel: str | None, state: str | None, limit: int
    ) -> list[JobSummary]:
        """The newest jobs (of `channel`; with a delivery in `state`), newest first."""

    @abstractmethod
    async def prune(self, before: float, limit: int) -> int:
        """Delete up to `limit` finished deliveries last changed before `before`, with their
        attempts, and the jobs left without deliveries. Returns how many deliveries."""

    @abstractmethod
    async def get_job(self, job_id: int) -> JobRecord | None:
        """A job with its deliveries and their attempts, or None (unknown or pruned)."""

    # -- switches and channel states ----------------------------------------------------------

    @abstractmethod
    async def get_flags(self) -> dict[str, str]:
        """The persisted switches (maintenance, stopped channels)."""

    @abstractmethod
    async def set_flag(self, name: str, value: str | None) -> None:
        """Set a switch, or remove it with None."""

    @abstractmethod
    async def flags_version(self) -> int:
        """A number that changes whenever a switch changes (by this Store or another sharing
        its data): poll it, and read `get_flags()` again when it moved."""

    @abstractmethod
    async def set_channel_state(
        self,
        channel: str,
        *,
        cooldown_until: float | Keep | None = KEEP,
        misconfigured: str | Keep | None = KEEP,
    ) -> None:
        """Set (None: clear) a channel's cool-down and misconfigured state; a part left at
        `KEEP` stays as it is."""

    @abstractmethod
    async def channel_states(self) -> dict[str, ChannelStateRecord]:
        """Every channel that has a cool-down (even one that has passed) or is misconfigured."""

    # -- rate keys ------------------------------------------------------------------------------

    @abstractmethod
    async def acquire_rate_key(self, key: str, lease_seconds: float) -> RateKeyLease | None:
        """Hold `key` (one remote budget: a bot, an account) for `lease_seconds` on the Store's
        clock, unless a live owner holds it: None then. A key that changes hands gets a new
        epoch; one this Store holds already keeps its own. A shared backend hands a key to one
        owner at a time and takes it from one whose lease ran out or whose node was declared
        dead; SQLite (one daemon per database) always grants it."""

    @abstractmethod
    async def renew_rate_key(
        self, key: str, epoch: int, checkpoint: str, lease_seconds: float
    ) -> bool:
        """Extend this Store's hold on `key` under `epoch` and save the pacing `checkpoint`.
        False: the key is not (or no longer) this Store's under that epoch; stop sending."""

    @abstractmethod
    async def release_rate_key(self, key: str, epoch: int, checkpoint: str) -> None:
        """Let `key` go (saving `checkpoint`), so that another owner need not wait for the
        lease to run out. Does nothing if the key is not this Store's under `epoch`."""

    # -- the hosts using the Store (DESIGN §9) ------------------------------------------------

    @abstractmethod
    async def nodes(self) -> list[NodeRecord]:
        """The hosts using the Store now, this one included, oldest first. (SQLite: this
        one, the state lock lets one daemon use a database.)"""

    @abstractmethod
    async def set_draining(self, draining: bool) -> None:
        """While draining, `claim` leases nothing; what this host holds it still completes
        (a rolling upgrade: drain, wait until it holds nothing, stop). Kept with the host's
        node, as long as the process: a restarted host does not drain."""

    @abstractmethod
    async def publish(self, runtime: Mapping[str, Any]) -> None:
        """What `nodes()` shows of this host (JSON values), replacing what it showed."""

    @abstractmethod
    async def lead(self, seconds: float) -> bool:
        """Take or renew the housekeeping lease for `seconds` (the Store's clock); True while
        this Store holds it, so that expiry, lease lapse and pruning run on one host at a
        time. Another Store takes it once it ran out or its holder is gone (dead, closed).
        SQLite: always True (one daemon per database)."""

    def unreachable(self) -> str | None:
        """Why the Store cannot be reached now (its database does not answer), or None:
        what the backend saw last, read without I/O. SQLite, always at hand, keeps this."""
        return None
