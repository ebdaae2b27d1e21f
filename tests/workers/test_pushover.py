"""The `pushover` worker's params."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notifierd.workers.pushover import PushoverParams, PushoverWorker


def test_emergency_priority_needs_retry_and_expire() -> None:
    with pytest.raises(ValidationError, match=r"priority 2 \(emergency\) needs retry and expire"):
        PushoverParams(token="t", user_key="u", priority=2)
    assert PushoverParams(token="t", user_key="u", priority=2, retry=30, expire=3600).expire == 3600


def test_both_keys_are_secrets() -> None:
    params = PushoverParams(token="app-token", user_key="user-key")
    assert sorted(PushoverWorker.secrets(params)) == ["app-token", "user-key"]
    assert "app-token" not in str(params)
