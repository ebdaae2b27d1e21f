"""Small helpers shared by the worker tests."""

from __future__ import annotations

import socket

from notifierd.messages import Delivery


def delivery(recipient: str, message: str, channel: str = "alerts", attempt: int = 1) -> Delivery:
    return Delivery(
        id=1, lease_token=1, channel=channel, recipient=recipient, message=message, attempt=attempt
    )


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
