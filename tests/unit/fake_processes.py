"""A worker process without a process: what the channel's parts (pool, dispatcher, outcome
handler) see of one, recorded for the tests to read and driven by them."""

from __future__ import annotations

from notifierd.messages import Delivery, Outcome


class FakeWorker:
    """Implements `channels.pool.WorkerHandle`."""

    def __init__(self, index: int, pid: int = 0) -> None:
        self.index = index
        self.pid: int | None = pid or 1000 + index
        self.exitcode: int | None = None
        self.in_flight: dict[int, Delivery] = {}
        self.started = False
        self.stop_asked = 0
        self.killed = False
        #: The batches handed to it, in order.
        self.batches: list[list[Delivery]] = []
        #: The `monotonic_offset` handed with each batch.
        self.offsets: list[float] = []
        #: The id of the delivery it is sending (`current_delivery`).
        self.sending: int | None = None

    @property
    def alive(self) -> bool:
        return self.started and self.exitcode is None

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stop_asked += 1

    def kill(self) -> None:
        self.killed = True

    def hand(self, deliveries: list[Delivery], monotonic_offset: float) -> None:
        self.batches.append(list(deliveries))
        self.offsets.append(monotonic_offset)
        for delivery in deliveries:
            self.in_flight[delivery.id] = delivery

    def current_delivery(self) -> int | None:
        return self.sending

    def take_outcomes(self, outcomes: list[Outcome]) -> list[tuple[Outcome, Delivery]]:
        answered = []
        for outcome in outcomes:
            delivery = self.in_flight.pop(outcome.id, None)
            if delivery is not None:
                answered.append((outcome, delivery))
        return answered


class FakeSpawner:
    """`Spawn` for a `WorkerPool`: makes FakeWorkers and keeps each one."""

    def __init__(self) -> None:
        self.made: list[FakeWorker] = []

    def __call__(self, index: int) -> FakeWorker:
        worker = FakeWorker(index, pid=1000 + len(self.made))
        self.made.append(worker)
        return worker
