"""The records the Store port (`store.base`) takes and returns: what a claim leased, the journal
as `notifierctl jobs` and `GET /api/jobs/{id}` show it, counts, lapses, the channels' shared
states, rate-key holds and the hosts using the Store. Plain data: nothing here does I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from notifierd.messages import Delivery


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


@dataclass(frozen=True, slots=True)
class ChannelStateRecord:
    """What a channel shares with every host through the Store: a remote's Retry-After
    cool-down and the misconfigured state (DESIGN §9). A channel with neither has no record."""

    #: Until when (the Store's clock) the channel sends nothing; None: no cool-down.
    cooldown_until: float | None = None
    #: Why the remote refuses the channel's credentials; None: it does not.
    misconfigured: str | None = None


@dataclass(frozen=True, slots=True)
class RateKeyLease:
    """This Store's hold on a rate key (`Store.acquire_rate_key`)."""

    #: Moves each time the key changes hands: a renewal under an older epoch is refused.
    epoch: int
    #: The pacing state the previous holder saved last (`renew_rate_key`), or None.
    checkpoint: str | None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A host using the Store (DESIGN §9), as `notifierctl nodes` and `status` show it:
    when it started and how old its heartbeat is (the Store's clock), whether it drains
    (`set_draining`) or leads (`lead`), the deliveries leased to it, the rate keys it holds
    (`acquire_rate_key`), and what it published about itself (`publish`: its pid, its
    channels' states)."""

    node_id: str
    started_at: float
    heartbeat_age: float
    draining: bool
    leader: bool
    leases: int
    rate_keys: list[str]
    runtime: dict[str, Any]
