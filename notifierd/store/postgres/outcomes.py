"""Applying workers' outcomes (and lapsed leases) to deliveries on PostgreSQL: the state
machine's verdict (`lifecycle.after_outcome`) written back, each attempt journalled.

Every transition is fenced: an outcome applies only to a delivery still leased under its
token, read with the row locked (`FOR UPDATE`, in id order so that two transactions never
wait for each other in a cycle). A batch of deliveries that all succeeded, the usual case, is
one statement in autocommit: the fence is in its WHERE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from notifierd.lifecycle import after_outcome
from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import DeliveryState, OutcomeKind
from notifierd.store.base import Lapsed

DELIVERED = DeliveryState.DELIVERED.value
# Outcomes that report no attempt: nothing was sent, so the journal records nothing.
NO_ATTEMPT = frozenset({OutcomeKind.UNSTARTED, OutcomeKind.EXPIRED})
#: Leases lapsed per transaction.
LAPSE_BATCH = 1000

ALL_DELIVERED = """
WITH o AS (
    SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::float8[]) AS o(id, token, duration)
), done AS (
    UPDATE deliveries d
       SET state = 'delivered', lease_owner = NULL, lease_token = NULL, leased_until = NULL,
           last_error = NULL, updated_at = $1
      FROM o
     WHERE d.id = o.id AND d.state = 'leased' AND d.lease_token = o.token
    RETURNING d.id, d.attempts, o.token, o.duration
), journal AS (
    INSERT INTO attempts (delivery_id, attempt, finished_at, outcome, duration, error)
    SELECT id, attempts, $1, 'delivered', duration, NULL FROM done
)
SELECT id, token FROM done
"""

LOCK_LEASED = """
SELECT id, lease_token, attempts, expires_at, channel, due_at FROM deliveries
 WHERE id = ANY($1::bigint[]) AND state = 'leased'
 ORDER BY id FOR UPDATE
"""

LOCK_LAPSED = """
SELECT id, lease_token, attempts, expires_at, channel, due_at FROM deliveries
 WHERE state = 'leased' AND leased_until <= $1
 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""

APPLY = """
UPDATE deliveries d
   SET state = u.state, due_at = COALESCE(u.due_at, d.due_at), attempts = d.attempts - u.uncount,
       last_error = CASE WHEN u.state = 'delivered' THEN NULL
                         ELSE COALESCE(u.error, d.last_error) END,
       lease_owner = NULL, lease_token = NULL, leased_until = NULL, updated_at = $1
  FROM unnest($2::bigint[], $3::text[], $4::float8[], $5::int[], $6::text[])
       AS u(id, state, due_at, uncount, error)
 WHERE d.id = u.id
"""

JOURNAL = """
INSERT INTO attempts (delivery_id, attempt, finished_at, outcome, duration, error)
SELECT id, attempt, $1, outcome, duration, error
  FROM unnest($2::bigint[], $3::int[], $4::text[], $5::float8[], $6::text[])
       AS a(id, attempt, outcome, duration, error)
"""


class Leased(NamedTuple):
    """A delivery's row as the fence reads it."""

    id: int
    lease_token: int
    attempts: int
    expires_at: float
    channel: str
    due_at: float


class Change(NamedTuple):
    id: int
    state: str
    due_at: float | None
    uncount: int
    error: str | None
    #: (attempt, outcome, duration, error) to journal, or None.
    attempt: tuple[int, str, float, str | None] | None


async def complete_delivered(
    conn: Any, outcomes: Sequence[Outcome], now: float
) -> list[str | None]:
    """Outcomes that are all DELIVERED: one statement."""
    rows = await conn.fetch(
        ALL_DELIVERED,
        now,
        [o.id for o in outcomes],
        [o.lease_token for o in outcomes],
        [o.duration for o in outcomes],
    )
    applied = {(row["id"], row["token"]) for row in rows}
    states: list[str | None] = []
    for outcome in outcomes:
        key = (outcome.id, outcome.lease_token)
        # The same delivery answered twice in one batch counts once.
        states.append(DELIVERED if key in applied else None)
        applied.discard(key)
    return states


async def complete(
    conn: Any,
    outcomes: Sequence[Outcome],
    policy: RetryPolicy,
    now: float,
    spreads: Sequence[float],
) -> list[str | None]:
    """Inside a transaction: the DELIVERED outcomes first, then the others in order, as the
    SQLite Store applies them. Returns, per outcome, the new state or None (not current)."""
    rows = await conn.fetch(LOCK_LEASED, sorted({o.id for o in outcomes}))
    current = {row["id"]: Leased(*row) for row in rows}
    states: list[str | None] = [None] * len(outcomes)
    changes: list[Change] = []
    order = [i for i, o in enumerate(outcomes) if o.kind == OutcomeKind.DELIVERED]
    order += [i for i, o in enumerate(outcomes) if o.kind != OutcomeKind.DELIVERED]
    for index in order:
        outcome = outcomes[index]
        row = current.get(outcome.id)
        if row is None or row.lease_token != outcome.lease_token:
            continue  # a late answer for a lease that is no longer current
        del current[outcome.id]
        change = _change(row, outcome, policy, now, spreads[index])
        states[index] = change.state
        changes.append(change)
    await _write(conn, changes, now)
    return states


async def lapse(
    conn: Any, now: float, policies: Mapping[str, RetryPolicy], spread: Any
) -> list[Lapsed]:
    """Inside a transaction: up to LAPSE_BATCH leases past their end handed out again (the
    attempt counted). Rows another transaction holds are skipped: an outcome is being written
    for them."""
    rows = [Leased(*row) for row in await conn.fetch(LOCK_LAPSED, now, LAPSE_BATCH)]
    changes = []
    for row in rows:
        outcome = Outcome(
            row.id,
            row.lease_token,
            OutcomeKind.LAPSED,
            error="the worker held the delivery past its lease",
        )
        changes.append(
            _change(row, outcome, policies.get(row.channel, RetryPolicy()), now, spread())
        )
    await _write(conn, changes, now)
    return [
        Lapsed(row.id, row.channel, change.state) for row, change in zip(rows, changes, strict=True)
    ]


def _change(
    row: Leased, outcome: Outcome, policy: RetryPolicy, now: float, spread: float
) -> Change:
    kind = outcome.kind
    transition = after_outcome(
        kind=kind,
        attempts=row.attempts,
        expires_at=row.expires_at,
        error=outcome.error,
        retry_after=outcome.retry_after,
        policy=policy,
        now=now,
        spread=spread,
    )
    attempt = None
    if kind not in NO_ATTEMPT:
        attempt = (row.attempts, kind.value, outcome.duration, outcome.error)
    return Change(
        row.id,
        transition.state.value,
        transition.due_at,
        1 if transition.uncount else 0,
        transition.error,
        attempt,
    )


async def _write(conn: Any, changes: Sequence[Change], now: float) -> None:
    if not changes:
        return
    await conn.execute(
        APPLY,
        now,
        [c.id for c in changes],
        [c.state for c in changes],
        [c.due_at for c in changes],
        [c.uncount for c in changes],
        [c.error for c in changes],
    )
    journal = [(c.id, c.attempt) for c in changes if c.attempt is not None]
    if journal:
        await conn.execute(
            JOURNAL,
            now,
            [delivery_id for delivery_id, _ in journal],
            [attempt[0] for _, attempt in journal],
            [attempt[1] for _, attempt in journal],
            [attempt[2] for _, attempt in journal],
            [attempt[3] for _, attempt in journal],
        )
