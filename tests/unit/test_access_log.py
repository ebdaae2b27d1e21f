"""The access log's target: query values masked, names kept."""

from __future__ import annotations

import pytest

from notifierd.api.access_log import masked_target


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("/api/send/x", "/api/send/x"),
        ("/api/send/x?message=secret%20text&delay=5", "/api/send/x?message=***&delay=***"),
        ("/api/ping?flag&message=", "/api/ping?flag&message=***"),
        ("/api/send/x?", "/api/send/x?"),
        ("/api/send/x?a=1=2&&b=", "/api/send/x?a=***&&b=***"),
    ],
)
def test_query_values_are_masked(raw: str, logged: str) -> None:
    assert masked_target(raw) == logged
