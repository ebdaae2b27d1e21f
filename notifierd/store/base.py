"""The Store interface (DESIGN §3). The parent process is its only user; workers never see it.

Nothing of a backend leaks through: a Redis Streams backend must fit the same methods.
Every method that changes state returns only after the change is durable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from notifierd.config import RetryPolicy
from notifierd.messages import Delivery, Outcome


class NewJob(NamedTuple):  # one per request: cheaper to make than a frozen dataclass
    """A message accepted for a channel, fanned out to `recipients` (one delivery each)."""

    channel: str
    message: str
    recipients: Sequence[str]
    delay: float
    ttl: float
    #: (key, digest of message and delay) of an idempotent send (`api.idempotency`), or None.
    idempotency: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    deliveries: list[Delivery]
    #: The earliest due time of what is still queued for the channel (None: nothing queued).
    next_due: float | None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as the journal and `notifierctl jobs` show it."""

    id: int
    job_id: int
    channel: str
    recipient: str
    state: str
    attempts: int
    due_at: float
    expires_at: float
    created_at: float
    updated_at: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a delivery, as the journal keeps it."""

    attempt: int
    finished_at: float
    outcome: str
    duration: float
    error: str | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job with each of its deliveries and their attempts."""

    id: int
    channel: str
    message: str
    created_at: float
    deliveries: list[tuple[DeliveryRecord, list[AttemptRecord]]]


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as `notifierctl jobs` shows it: its deliveries counted by state."""

    id: int
    channel: str
    created_at: float
    #: When the most recently changed of its deliveries changed.
    updated_at: float
    states: dict[str, int]
    #: The error of the most recently changed delivery that has one.
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Retried:
    """What an operator's retry did to one job's (or one delivery's) deliveries."""

    requeued: int
    #: The deliveries left as they were (not dead, failed or expired), by state.
    untouched: dict[str, int]


@dataclass(slots=True)
class StoreCounts:
    """Deliveries of one channel by state; `queued` is due now, `delayed` is due later."""

    queued: int = 0
    delayed: int = 0
    in_flight: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    expired: int = 0

    def by_state(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A delivery whose lease ran out, and what became of it."""

    id: int
    channel: str
    state: str


class Store(ABC):
    """Durable queue of deliveries, the maintenance flag and the per-channel switches."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def recover(self, now: float) -> int:
        """At start-up: every leased delivery goes back to queued. Returns how many."""

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
        """Lease up to `limit` due, unexpired deliveries of `channel`, oldest due first."""

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
    async def counts(self, now: float) -> dict[str, StoreCounts]:
        """Per channel, deliveries by state."""

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

    @abstractmethod
    async def get_flags(self) -> dict[str, str]:
        """The persisted switches (maintenance, stopped channels)."""

    @abstractmethod
    async def set_flag(self, name: str, value: str | None) -> None:
        """Set a switch, or remove it with None."""
