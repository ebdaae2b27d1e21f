"""The one host of a SQLite Store (the state lock lets one daemon use a database): what
`Store.nodes()` shows of it, and whether it drains. Nothing of it is written to the database:
a host's node lasts as long as its process, as a PostgreSQL host's row does."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from notifierd.store.base import NodeRecord


class SingleNode:
    def __init__(self) -> None:
        self.started_at = time.time()
        self.draining = False
        self._runtime: dict[str, Any] = {}

    def publish(self, runtime: Mapping[str, Any]) -> None:
        # Through JSON, as a shared backend keeps it: what is shown is what another host
        # would read back.
        self._runtime = json.loads(json.dumps(dict(runtime)))

    def record(self, owner: str, leases: int, rate_keys: list[str]) -> NodeRecord:
        # Its heartbeat is this answer; it leads, being the only one.
        runtime = dict(self._runtime)
        return NodeRecord(
            owner, self.started_at, 0.0, self.draining, True, leases, rate_keys, runtime
        )
