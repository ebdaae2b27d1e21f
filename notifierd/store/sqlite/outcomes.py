"""Applying workers' outcomes to delivery rows, inside the Store's write transaction: the state
machine's verdict (`lifecycle.after_outcome`) written back, and each attempt journalled."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from notifierd.lifecycle import Transition, after_outcome
from notifierd.messages import Outcome
from notifierd.retry import RetryPolicy
from notifierd.states import DeliveryState, OutcomeKind
from notifierd.store.counts import CountChanges
from notifierd.store.sqlite.rows import RowsInsert

# Outcomes per statement: their ids, or their attempts' rows (6 values each), stay under
# rows.MAX_PARAMETERS.
CHUNK = 150

_INSERT_ATTEMPTS = RowsInsert(
    "INSERT INTO attempts (delivery_id, attempt, finished_at, outcome, duration, error)",
    "(?, ?, ?, ?, ?, ?)",
)
LEASED = DeliveryState.LEASED.value
DELIVERED = DeliveryState.DELIVERED.value
# Outcomes that report no attempt: nothing was sent, so the journal records nothing.
NO_ATTEMPT = frozenset({OutcomeKind.UNSTARTED, OutcomeKind.EXPIRED})


def apply_delivered(
    conn: sqlite3.Connection, outcomes: Sequence[Outcome], now: float, changes: CountChanges
) -> dict[int, str | None]:
    """Apply the DELIVERED outcomes among `outcomes` with two statements in all, not two each:
    the transition does not depend on the row. Returns, by position in `outcomes`, the new
    state or None when the lease was not current (the answer is ignored)."""
    positions = [i for i, outcome in enumerate(outcomes) if outcome.kind == OutcomeKind.DELIVERED]
    states: dict[int, str | None] = {}
    by_channel: dict[str, int] = {}
    for start in range(0, len(positions), CHUNK):
        chunk = positions[start : start + CHUNK]
        ids = [outcomes[i].id for i in chunk]
        current = {
            delivery_id: (token, attempts, channel)
            for delivery_id, token, attempts, channel in conn.execute(
                "SELECT id, lease_token, attempts, channel FROM deliveries"
                f" WHERE state = 'leased' AND id IN ({','.join('?' * len(ids))})",
                ids,
            )
        }
        applied: list[int] = []
        journal: list[tuple[int, int, float, str, float, None]] = []
        for i in chunk:
            outcome = outcomes[i]
            token, attempts, channel = current.get(outcome.id, (None, 0, ""))
            if token == outcome.lease_token:
                by_channel[channel] = by_channel.get(channel, 0) + 1
                # The same delivery answered twice in one batch counts once, as one by one.
                del current[outcome.id]
                states[i] = DeliveryState.DELIVERED.value
                applied.append(outcome.id)
                journal.append((outcome.id, attempts, now, "delivered", outcome.duration, None))
            else:
                states[i] = None
        if applied:
            # One statement for the chunk, not one per row (see rows.py).
            marks = ",".join("?" * len(applied))
            conn.execute(
                "UPDATE deliveries SET state = 'delivered', lease_token = NULL,"
                f" leased_until = NULL, last_error = NULL, updated_at = ? WHERE id IN ({marks})",
                [now, *applied],
            )
            _INSERT_ATTEMPTS.run(conn, journal)
    for channel, number in by_channel.items():
        changes.move(channel, LEASED, DELIVERED, number)
    return states


def apply_outcome(
    conn: sqlite3.Connection,
    outcome: Outcome,
    policy: RetryPolicy,
    now: float,
    spread: float,
    *,
    changes: CountChanges,
) -> str | None:
    row = conn.execute(
        "SELECT attempts, expires_at, channel, due_at FROM deliveries"
        " WHERE id = ? AND state = 'leased' AND lease_token = ?",
        (outcome.id, outcome.lease_token),
    ).fetchone()
    if row is None:
        return None  # a late answer for a lease that is no longer current
    attempts, expires_at, channel, due_at = row
    kind = outcome.kind
    if kind not in NO_ATTEMPT:
        _INSERT_ATTEMPTS.run(
            conn, [(outcome.id, attempts, now, kind.value, outcome.duration, outcome.error)]
        )
    transition = after_outcome(
        kind=kind,
        attempts=attempts,
        expires_at=expires_at,
        error=outcome.error,
        retry_after=outcome.retry_after,
        policy=policy,
        now=now,
        spread=spread,
    )
    _write_transition(conn, outcome.id, transition, now)
    state = transition.state.value
    changes.move(channel, LEASED, state)
    if state == DeliveryState.QUEUED:
        changes.queued_until(
            channel, due_at if transition.due_at is None else transition.due_at, now
        )
    return state


def _write_transition(
    conn: sqlite3.Connection, delivery_id: int, transition: Transition, now: float
) -> None:
    conn.execute(
        "UPDATE deliveries SET state = ?, due_at = COALESCE(?, due_at),"
        " attempts = attempts - ?,"
        # Delivered clears the error (the journal's history keeps it); otherwise the newest
        # error is kept, or the last one when the outcome has none.
        " last_error = CASE WHEN ? = 'delivered' THEN NULL ELSE COALESCE(?, last_error) END,"
        " lease_token = NULL, leased_until = NULL, updated_at = ? WHERE id = ?",
        (
            transition.state.value,
            transition.due_at,
            1 if transition.uncount else 0,
            transition.state.value,
            transition.error,
            now,
            delivery_id,
        ),
    )
