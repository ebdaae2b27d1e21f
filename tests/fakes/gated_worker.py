"""A worker type for tests whose worker processes hold still while they start: importing this
module in a worker process (which the spawn start method does to unpickle the channel's params,
before the worker's own code runs) waits until the file named by `NOTIFIERD_TEST_START_GATE`
exists. A test can so kill the parent while a worker is half-started.

    channels: {out: {worker: "tests.fakes.gated_worker:GatedWorker"}}
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from notifierd.workers.null import NullParams, NullWorker

GATE_VARIABLE = "NOTIFIERD_TEST_START_GATE"
GATE_TIMEOUT = 60.0


def _wait_for_the_gate() -> None:
    gate = os.environ.get(GATE_VARIABLE)
    if gate is None or multiprocessing.parent_process() is None:
        return  # the daemon itself, checking its configuration, does not wait
    deadline = time.monotonic() + GATE_TIMEOUT
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


_wait_for_the_gate()


class GatedParams(NullParams):
    """The null worker's params, defined here so that a worker process imports this module."""


class GatedWorker(NullWorker):
    Params = GatedParams
