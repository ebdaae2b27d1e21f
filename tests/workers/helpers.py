"""Small helpers shared by the worker tests."""

from __future__ import annotations

from notifierd.messages import Delivery


def delivery(recipient: str, message: str, channel: str = "alerts", attempt: int = 1) -> Delivery:
    return Delivery(
        id=1, lease_token=1, channel=channel, recipient=recipient, message=message, attempt=attempt
    )
