"""What crosses the pipes to the worker processes pickles to an equal object, every field."""

from __future__ import annotations

import pickle

from notifierd.messages import Delivery, Outcome
from notifierd.states import OutcomeKind


def test_delivery_round_trip_keeps_every_field() -> None:
    delivery = Delivery(7, 2**61, "tg", "-100123", "Привет", 3, 1e10, 2e9, 1.5)
    copy = pickle.loads(pickle.dumps([delivery]))[0]
    assert copy == delivery
    assert [getattr(copy, name) for name in Delivery._fields] == [
        getattr(delivery, name) for name in Delivery._fields
    ]


def test_delivery_defaults_survive() -> None:
    delivery = Delivery(1, 2, "c", "r", "m", 1)
    assert pickle.loads(pickle.dumps(delivery)) == delivery


def test_outcome_round_trip_keeps_every_field() -> None:
    outcome = Outcome(7, 9, OutcomeKind.TEMPORARY, 30.0, "429 Too Many Requests", 0.25)
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    delivered = Outcome(1, 2, OutcomeKind.DELIVERED)
    assert pickle.loads(pickle.dumps(delivered)) == delivered
