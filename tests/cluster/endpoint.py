"""The remote the cluster tests deliver to: the fake webhook (tests/fakes/webhook.py), each send
taking `seconds` to answer so that hosts hold deliveries in hand, and each request naming the
host that sent it (a header of that host's channel file) and the delivery (the body).

What counts is what arrived here: a delivery sent twice is two requests with one delivery id,
whichever hosts sent them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from tests.fakes.webhook import FakeWebhook

HOST_HEADER = "X-Notifierd-Host"
BODY = '{"delivery": "{delivery_id}", "message": "{message}"}'


@dataclass(frozen=True)
class Send:
    host: str
    delivery: int
    #: Arrival, `time.monotonic()` of the test process.
    at: float


class Endpoint(FakeWebhook):
    def __init__(self, seconds: float = 0.05) -> None:
        super().__init__()
        self.answer_after(seconds)
        self._waiting: Counter[str] = Counter()

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        host = request.headers.get(HOST_HEADER, "")
        self._waiting[host] += 1
        try:
            return await super()._receive(request)
        finally:
            self._waiting[host] -= 1

    def waiting(self, host: str) -> int:
        """How many requests of `host` arrived and wait for their answer."""
        return self._waiting[host]

    def answer_after(self, seconds: float) -> None:
        """Each request is recorded on arrival and answered 204 `seconds` later."""
        self.latency = seconds

    def sends(self) -> list[Send]:
        return [
            Send(r.headers[HOST_HEADER], int(r.params["delivery"]), r.at)
            for r in list(self.requests)
        ]

    def count(self) -> int:
        return len(self.requests)

    def duplicates(self) -> set[int]:
        """The deliveries that arrived more than once."""
        counts = Counter(send.delivery for send in self.sends())
        return {delivery for delivery, count in counts.items() if count > 1}

    def channels(
        self,
        host: str,
        *,
        processes: int = 2,
        prefetch: int = 1,
        **options: Any,
    ) -> str:
        """The channel file of `host`: one webhook channel `hook` to this endpoint."""
        channel = {
            "worker": "webhook",
            "processes": processes,
            "prefetch": prefetch,
            "retry": {"delay": 0.2, "max_attempts": 50, "jitter": 0},
            **options,
            "params": {
                "url": f"{self.base_url}/hook",
                "headers": {HOST_HEADER: host},
                "body": BODY,
                "timeout": 10,
            },
        }
        return yaml.safe_dump({"channels": {"hook": channel}}, sort_keys=False)
