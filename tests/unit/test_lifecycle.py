"""`after_outcome`: every transition of a leased delivery (DESIGN §2)."""

from __future__ import annotations

import pytest

from notifierd.errors import MAX_RETRY_AFTER, RateLimited
from notifierd.lifecycle import Transition, after_outcome
from notifierd.retry import RetryPolicy
from notifierd.states import DeliveryState, OutcomeKind

NOW = 1000.0
EXPIRES = NOW + 3600
POLICY = RetryPolicy(delay=10, backoff=2, max_delay=100, max_attempts=4, jitter=0.5)

Q, DEAD, EXPIRED = DeliveryState.QUEUED, DeliveryState.DEAD, DeliveryState.EXPIRED
COUNTED = (OutcomeKind.TEMPORARY, OutcomeKind.CRASHED, OutcomeKind.LAPSED)


def transition(
    kind: OutcomeKind,
    attempts: int = 1,
    expires_at: float = EXPIRES,
    error: str | None = "oops",
    retry_after: float | None = None,
    spread: float = 0.0,
    policy: RetryPolicy = POLICY,
) -> Transition:
    return after_outcome(
        kind=kind,
        attempts=attempts,
        expires_at=expires_at,
        error=error,
        retry_after=retry_after,
        policy=policy,
        now=NOW,
        spread=spread,
    )


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        # leased -> DELIVERED
        ("delivered", {"kind": OutcomeKind.DELIVERED}, Transition(DeliveryState.DELIVERED)),
        (
            "delivered on the last attempt past expiry",
            {"kind": OutcomeKind.DELIVERED, "attempts": 4, "expires_at": NOW - 1},
            Transition(DeliveryState.DELIVERED),
        ),
        # leased -> FAILED, error kept
        (
            "permanent",
            {"kind": OutcomeKind.PERMANENT, "error": "chat not found"},
            Transition(DeliveryState.FAILED, error="chat not found"),
        ),
        (
            "permanent on the last attempt",
            {"kind": OutcomeKind.PERMANENT, "attempts": 4},
            Transition(DeliveryState.FAILED, error="oops"),
        ),
        # temporary, attempts left, next try before expiry -> queued with backoff
        ("temporary 1", {"kind": OutcomeKind.TEMPORARY}, Transition(Q, NOW + 10, "oops")),
        (
            "temporary 2",
            {"kind": OutcomeKind.TEMPORARY, "attempts": 2},
            Transition(Q, NOW + 20, "oops"),
        ),
        (
            "temporary 3",
            {"kind": OutcomeKind.TEMPORARY, "attempts": 3},
            Transition(Q, NOW + 40, "oops"),
        ),
        (
            "temporary, jitter up",
            {"kind": OutcomeKind.TEMPORARY, "spread": 1.0},
            Transition(Q, NOW + 15, "oops"),
        ),
        (
            "temporary, jitter down",
            {"kind": OutcomeKind.TEMPORARY, "spread": -1.0},
            Transition(Q, NOW + 5, "oops"),
        ),
        (
            "retry-after overrides the backoff",
            {"kind": OutcomeKind.TEMPORARY, "retry_after": 2.5, "spread": 1.0},
            Transition(Q, NOW + 2.5, "oops"),
        ),
        (
            "retry-after beyond max_delay",
            {"kind": OutcomeKind.TEMPORARY, "retry_after": 500.0},
            Transition(Q, NOW + 500, "oops"),
        ),
        (
            "retry-after zero",
            {"kind": OutcomeKind.TEMPORARY, "retry_after": 0.0},
            Transition(Q, NOW, "oops"),
        ),
        # temporary, attempts used up -> DEAD
        (
            "temporary, last attempt",
            {"kind": OutcomeKind.TEMPORARY, "attempts": 4},
            Transition(DEAD, error="oops"),
        ),
        (
            "temporary, beyond the last attempt",
            {"kind": OutcomeKind.TEMPORARY, "attempts": 9},
            Transition(DEAD, error="oops"),
        ),
        (
            "dead wins over expired",
            {"kind": OutcomeKind.TEMPORARY, "attempts": 4, "expires_at": NOW},
            Transition(DEAD, error="oops"),
        ),
        (
            "retry-after does not save the last attempt",
            {"kind": OutcomeKind.TEMPORARY, "attempts": 4, "retry_after": 1.0},
            Transition(DEAD, error="oops"),
        ),
        # temporary, next try at or after expires_at -> EXPIRED
        (
            "next try exactly at expiry",
            {"kind": OutcomeKind.TEMPORARY, "expires_at": NOW + 10},
            Transition(EXPIRED, error="oops"),
        ),
        (
            "next try just before expiry",
            {"kind": OutcomeKind.TEMPORARY, "expires_at": NOW + 10.001},
            Transition(Q, NOW + 10, "oops"),
        ),
        (
            "retry-after past expiry",
            {"kind": OutcomeKind.TEMPORARY, "retry_after": 3600.0},
            Transition(EXPIRED, error="oops"),
        ),
        # misconfigured: the attempt is given back, due now
        (
            "misconfigured",
            {"kind": OutcomeKind.MISCONFIGURED, "attempts": 4, "error": "bad token"},
            Transition(Q, NOW, "bad token", uncount=True),
        ),
        (
            "misconfigured past expiry",
            {"kind": OutcomeKind.MISCONFIGURED, "expires_at": NOW},
            Transition(EXPIRED, error="oops"),
        ),
        # rate limited: the attempt is given back, due after the remote's Retry-After
        (
            "rate limited",
            {"kind": OutcomeKind.RATE_LIMITED, "retry_after": 2.5, "spread": 1.0},
            Transition(Q, NOW + 2.5, "oops", uncount=True),
        ),
        (
            "rate limited on the last attempt is not dead",
            {"kind": OutcomeKind.RATE_LIMITED, "attempts": 4, "retry_after": 7.0},
            Transition(Q, NOW + 7, "oops", uncount=True),
        ),
        (
            "rate limited without a time waits the channel's delay",
            {"kind": OutcomeKind.RATE_LIMITED},
            Transition(Q, NOW + 10, "oops", uncount=True),
        ),
        (
            "rate limited with a Retry-After of 0 waits the channel's delay, not a tight loop",
            {"kind": OutcomeKind.RATE_LIMITED, "retry_after": 0.0},
            Transition(Q, NOW + 10, "oops", uncount=True),
        ),
        (
            "rate limited past expiry",
            {"kind": OutcomeKind.RATE_LIMITED, "retry_after": 3600.0},
            Transition(EXPIRED, error="oops", uncount=True),
        ),
        # unstarted: the attempt is given back, due time kept
        (
            "unstarted",
            {"kind": OutcomeKind.UNSTARTED, "attempts": 4, "error": None},
            Transition(Q, uncount=True),
        ),
        (
            "unstarted past expiry (the expiry sweep ends it)",
            {"kind": OutcomeKind.UNSTARTED, "expires_at": NOW - 1, "error": None},
            Transition(Q, uncount=True),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_transition(case: str, kwargs: dict[str, object], expected: Transition) -> None:
    assert transition(**kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", COUNTED)
def test_counted_kinds_behave_alike(kind: OutcomeKind) -> None:
    """A crash or a lapsed lease counts like a temporary failure, so a poison message ends
    DEAD rather than looping."""
    assert transition(kind) == Transition(Q, NOW + 10, "oops")
    assert transition(kind, attempts=4) == Transition(DEAD, error="oops")
    assert transition(kind, expires_at=NOW + 5) == Transition(EXPIRED, error="oops")
    assert not transition(kind).uncount


def test_expired_in_the_worker_queue() -> None:
    result = transition(OutcomeKind("expired"), error="ttl")
    assert result.state is EXPIRED
    assert result.uncount
    assert result.error == "ttl"


def test_every_outcome_kind_has_a_transition() -> None:
    for kind in OutcomeKind:
        for attempts in (1, POLICY.max_attempts):
            result = transition(kind, attempts=attempts)
            assert isinstance(result.state, DeliveryState)
            assert result.state is not DeliveryState.LEASED


def test_rate_limits_forever_end_expired_not_dead() -> None:
    """A remote that answers 429 every time: never charged, so never DEAD; the TTL ends it."""
    now, attempts = NOW, 1
    while True:
        result = after_outcome(
            kind=OutcomeKind.RATE_LIMITED,
            attempts=attempts,
            expires_at=EXPIRES,
            error="429",
            retry_after=30.0,
            policy=POLICY,
            now=now,
            spread=0.0,
        )
        assert result.uncount
        if result.state is not Q:
            break
        assert result.due_at is not None
        now = result.due_at
    assert result.state is EXPIRED
    assert EXPIRES - 30 <= now < EXPIRES


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        (1800, Transition(EXPIRED, error="oops", uncount=True)),
        (86400, Transition(Q, NOW + MAX_RETRY_AFTER, "oops", uncount=True)),
    ],
)
def test_a_retry_after_of_ten_days_waits_an_hour_at_most(ttl: float, expected: Transition) -> None:
    """Bounded where the worker raises it: the channel asks again after an hour, and a
    delivery whose TTL ends before then expires now."""
    bounded = RateLimited("429", retry_after=10 * 86400).retry_after
    assert bounded == MAX_RETRY_AFTER
    result = transition(OutcomeKind.RATE_LIMITED, expires_at=NOW + ttl, retry_after=bounded)
    assert result == expected


def test_no_attempt_given_back_for_counted_or_terminal() -> None:
    for kind in (*COUNTED, OutcomeKind.DELIVERED, OutcomeKind.PERMANENT):
        assert not transition(kind).uncount, kind


def test_max_attempts_one_means_no_retry() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert transition(OutcomeKind.TEMPORARY, policy=policy).state is DEAD


def test_state_properties() -> None:
    assert {s for s in DeliveryState if s.terminal} == {
        DeliveryState.DELIVERED,
        DeliveryState.FAILED,
        DeliveryState.DEAD,
        DeliveryState.EXPIRED,
    }
