"""The `ntfy` worker's params."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from notifierd.workers.ntfy import NtfyParams


@pytest.mark.parametrize(("name", "number"), [("min", 1), ("HIGH", 4), ("urgent", 5), (2, 2)])
def test_a_priority_by_name_or_number(name: object, number: int) -> None:
    assert NtfyParams(topic="t", priority=name).priority == number


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"token": "tk_1", "username": "u", "password": "p"}, "not both"),
        ({"username": "u"}, "username and password go together"),
        ({"topic": "a/b"}, "String should match pattern"),
        ({"server": "ntfy.sh"}, "server must be an http:// or https:// URL"),
        ({"priority": 6}, "less than or equal to 5"),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        NtfyParams(**{"topic": "alerts", **params})
