"""The `matrix` worker's transaction ids, length and params."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notifierd.messages import Delivery
from notifierd.workers.matrix import BODY_BYTES, MatrixParams, MatrixWorker, transaction_id

PARAMS = MatrixParams(homeserver="https://m.example.org", access_token="t", room_id="!r:x.org")


def test_a_transaction_id_is_the_deliverys_and_no_other_ones() -> None:
    first = Delivery(id=7, lease_token=1, channel="c", recipient="", message="m", attempt=1)

    assert transaction_id(first) == transaction_id(first._replace(attempt=3, lease_token=9))
    # A new database's delivery 7 was accepted at another time.
    assert transaction_id(first) != transaction_id(first._replace(created_at=1.0))
    assert transaction_id(first) != transaction_id(first._replace(id=8))


def test_the_body_is_measured_in_bytes_of_json() -> None:
    assert MatrixWorker.check_message(PARAMS, "я" * (BODY_BYTES // 2)) is None
    reason = MatrixWorker.check_message(PARAMS, "\n" * (BODY_BYTES // 2 + 1))
    assert reason == "message is 60002 bytes of JSON long; this channel accepts at most 60000"


@pytest.mark.parametrize("room_id", ["#alias:example.org", "room", ""])
def test_a_room_id_starts_with_an_exclamation_mark(room_id: str) -> None:
    with pytest.raises(ValidationError, match="room_id"):
        MatrixParams(homeserver="https://m.example.org", access_token="t", room_id=room_id)
