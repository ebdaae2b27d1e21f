"""The worker pool's slots: every legal transition of `states.SLOT_TRANSITIONS` made by the event
that makes it, every other one refused; restarts, backoff and FATAL. No processes: the pool's
processes are fakes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from notifierd.channels import pool as pool_module
from notifierd.channels.pool import IllegalTransition, WorkerPool, WorkerSlot
from notifierd.messages import Delivery
from notifierd.states import SLOT_TRANSITIONS, SlotState
from tests.unit.fake_processes import FakeSpawner, FakeWorker

IDLE, STARTING, RUNNING = SlotState.IDLE, SlotState.STARTING, SlotState.RUNNING
STOPPING, BACKOFF, FATAL = SlotState.STOPPING, SlotState.BACKOFF, SlotState.FATAL


class Pool:
    """A pool of fakes, and what it did."""

    def __init__(self, size: int = 1) -> None:
        self.spawner = FakeSpawner()
        self.restarts = 0
        self.pool: WorkerPool[FakeWorker] = WorkerPool(
            "devnull", size, self.spawner, on_restart=self.count_restart
        )

    def count_restart(self) -> None:
        self.restarts += 1

    @property
    def slot(self) -> WorkerSlot[FakeWorker]:
        return self.pool.slots[0]

    @property
    def worker(self) -> FakeWorker:
        """The process of the first slot."""
        assert self.slot.process is not None
        return self.slot.process

    def exit(self, code: int, slot: int = 0) -> FakeWorker:
        worker = self.pool.slots[slot].process
        assert worker is not None
        worker.exitcode = code
        self.pool.exited(worker)
        return worker

    def running(self) -> FakeWorker:
        self.pool.activate()
        self.pool.ready(self.worker)
        return self.worker


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.001)


Move = tuple[SlotState, SlotState]


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> list[Move]:
    """Every move any slot makes, in order."""
    made: list[Move] = []
    move = WorkerSlot.move

    def recorded(slot: WorkerSlot[FakeWorker], to: SlotState) -> None:
        before = slot.state
        move(slot, to)
        made.append((before, to))

    monkeypatch.setattr(WorkerSlot, "move", recorded)
    return made


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restarts due at once: the tests wait for the loop, not for the backoff."""
    monkeypatch.setattr(pool_module, "BOOT_BACKOFF", (0.0, 0.0, 0.0))
    monkeypatch.setattr(pool_module, "CRASH_BACKOFF_FIRST", 0.0)


# -- every legal transition, by its event ----------------------------------------------------


async def idle_to_starting(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.pool.activate()
    assert p.worker.started


async def starting_to_running(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.pool.activate()
    p.pool.ready(p.worker)
    assert p.slot.ready


async def starting_to_stopping(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.pool.activate()
    p.pool.deactivate()
    assert p.worker.stop_asked == 1


async def starting_to_backoff(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.pool.activate()
    p.exit(3)
    assert (p.slot.boot_failures, p.restarts) == (1, 1)
    assert p.slot.restart is not None


async def starting_to_fatal(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.pool.activate()
    for _ in range(pool_module.BOOT_RETRIES - 1):
        p.exit(3)
        await until(lambda: p.slot.state is STARTING)
    p.exit(3)
    assert p.pool.fatal_reason == "worker 0 failed to start 3 times in a row"
    assert not p.pool.active


async def running_to_stopping(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = p.running()
    p.pool.deactivate()
    assert worker.stop_asked == 1


async def running_to_backoff(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.running()
    p.exit(-9)
    assert (p.slot.boot_failures, p.restarts) == (0, 1)


async def stopping_to_idle(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.running()
    p.pool.deactivate()
    p.exit(0)
    assert p.slot.process is None
    assert p.restarts == 0  # an orderly stop is no restart


async def stopping_to_starting(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    first = p.running()
    p.pool.deactivate()
    p.pool.activate()  # before the process ended: it ends, another starts at once
    p.exit(0)
    assert p.worker is not first and p.worker.started
    assert p.restarts == 0


async def stopping_to_backoff(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.running()
    p.pool.deactivate()
    p.pool.activate()
    p.exit(-9)
    assert p.restarts == 1


async def stopping_to_fatal(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Activating again resets the count of start-up failures: with one allowed, a process that
    # was asked to stop before it was ready, and then fails, is the one too many.
    monkeypatch.setattr(pool_module, "BOOT_RETRIES", 1)
    p.pool.activate()
    p.pool.deactivate()
    p.pool.activate()
    p.exit(3)
    assert p.pool.fatal_reason is not None


async def backoff_to_starting_when_due(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    p.running()
    p.exit(-9)
    await until(lambda: p.slot.state is STARTING)
    assert p.slot.restart is None


async def backoff_to_starting_by_activate(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "CRASH_BACKOFF_FIRST", 3600.0)
    p.running()
    p.exit(-9)
    timer = p.slot.restart
    assert timer is not None
    p.pool.activate()  # the operator's start does not wait for the backoff
    assert p.slot.restart is None and timer.cancelled()


async def backoff_to_idle(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "CRASH_BACKOFF_FIRST", 3600.0)
    p.running()
    p.exit(-9)
    timer = p.slot.restart
    assert timer is not None
    p.pool.deactivate()
    assert timer.cancelled() and p.slot.restart is None


async def fatal_to_starting(p: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    await starting_to_fatal(p, monkeypatch)
    p.pool.activate()
    assert p.pool.fatal_reason is None
    assert p.slot.boot_failures == 0


Scenario = Callable[[Pool, pytest.MonkeyPatch], Awaitable[None]]
TRANSITIONS: list[tuple[SlotState, SlotState, Scenario]] = [
    (IDLE, STARTING, idle_to_starting),
    (STARTING, RUNNING, starting_to_running),
    (STARTING, STOPPING, starting_to_stopping),
    (STARTING, BACKOFF, starting_to_backoff),
    (STARTING, FATAL, starting_to_fatal),
    (RUNNING, STOPPING, running_to_stopping),
    (RUNNING, BACKOFF, running_to_backoff),
    (STOPPING, IDLE, stopping_to_idle),
    (STOPPING, STARTING, stopping_to_starting),
    (STOPPING, BACKOFF, stopping_to_backoff),
    (STOPPING, FATAL, stopping_to_fatal),
    (BACKOFF, STARTING, backoff_to_starting_when_due),
    (BACKOFF, STARTING, backoff_to_starting_by_activate),
    (BACKOFF, IDLE, backoff_to_idle),
    (FATAL, STARTING, fatal_to_starting),
]


def test_the_scenarios_cover_every_legal_transition() -> None:
    legal = {(a, b) for a, targets in SLOT_TRANSITIONS.items() for b in targets}
    assert {(a, b) for a, b, _ in TRANSITIONS} == legal
    assert set(SLOT_TRANSITIONS) == set(SlotState)


@pytest.mark.parametrize(
    ("before", "after", "scenario"), TRANSITIONS, ids=[s.__name__ for _, _, s in TRANSITIONS]
)
async def test_legal_transition(
    before: SlotState,
    after: SlotState,
    scenario: Scenario,
    monkeypatch: pytest.MonkeyPatch,
    moves: list[Move],
) -> None:
    p = Pool()
    await scenario(p, monkeypatch)
    assert (before, after) in moves
    assert p.slot.state is after


@pytest.mark.parametrize(
    ("before", "after"),
    [(a, b) for a, b in itertools.product(SlotState, SlotState) if b not in SLOT_TRANSITIONS[a]],
)
def test_illegal_transition_is_refused(before: SlotState, after: SlotState) -> None:
    slot: WorkerSlot[FakeWorker] = WorkerSlot(2)
    slot.state = before
    with pytest.raises(IllegalTransition, match=f"worker slot 2 cannot go from {before} to"):
        slot.move(after)
    assert slot.state is before


# -- what the states mean to the rest of the channel -----------------------------------------


def delivery(delivery_id: int) -> Delivery:
    return Delivery(delivery_id, 1, "devnull", "", "m", 1)


async def test_only_a_running_process_has_room() -> None:
    p = Pool(size=2)
    p.pool.activate()
    first, second = p.spawner.made
    assert p.pool.rooms(4) == []
    assert p.pool.starting and not p.pool.backing_off
    p.pool.ready(first)
    first.hand([delivery(1)], 0.0)
    assert p.pool.rooms(4) == [(first, 3)]
    assert p.pool.starting  # the second has not said it is ready
    p.pool.ready(second)
    assert not p.pool.starting
    assert p.pool.rooms(4) == [(first, 3), (second, 4)]
    p.pool.deactivate()
    assert p.pool.rooms(4) == []


async def test_a_process_ready_after_its_stop_stays_stopping() -> None:
    p = Pool()
    p.pool.activate()
    p.pool.deactivate()
    p.pool.ready(p.worker)
    assert p.slot.state is STOPPING and p.slot.ready
    assert p.pool.rooms(4) == []


async def test_deactivating_twice_sends_one_sentinel() -> None:
    p = Pool()
    worker = p.running()
    p.pool.deactivate()
    p.pool.deactivate()
    assert worker.stop_asked == 1


async def test_fatal_slot_stops_its_siblings_and_activate_restarts_them() -> None:
    p = Pool(size=2)
    p.pool.activate()
    sibling = p.spawner.made[1]
    p.pool.ready(sibling)
    with capture_logs() as logs:
        for _ in range(pool_module.BOOT_RETRIES):
            p.exit(3, slot=0)
            if p.pool.slots[0].state is BACKOFF:
                await until(lambda: p.pool.slots[0].state is STARTING)
    assert [s.state for s in p.pool.slots] == [FATAL, STOPPING]
    assert sibling.stop_asked == 1
    [fatal] = [e for e in logs if e["event"] == "channel.fatal"]
    assert fatal["hint"] == "fix the cause logged above, then run: notifierctl start devnull"
    p.exit(0, slot=1)
    assert [s.state for s in p.pool.slots] == [FATAL, IDLE]
    p.pool.activate()
    assert [s.state for s in p.pool.slots] == [STARTING, STARTING]


async def test_crash_backoff_doubles_up_to_its_cap_and_resets_after_a_stable_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_module, "CRASH_BACKOFF_FIRST", 0.1)
    p = Pool()
    p.running()
    delays = []
    for _ in range(9):
        delays.append(p.slot.crash_backoff)
        p.exit(-9)
        p.slot.cancel_restart()  # the test starts it again itself, at once
        p.pool.activate()
        p.pool.ready(p.worker)
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    p.slot.started_at -= pool_module.STABLE_SECONDS
    p.exit(-9)
    assert p.slot.crash_backoff == 0.2  # this restart waited 0.1 s again


async def test_died_and_stopped_are_logged_with_the_slot_and_pid() -> None:
    p = Pool()
    with capture_logs() as logs:
        worker = p.running()
        p.exit(-9)
    died = next(e for e in logs if e["event"] == "worker.died")
    assert (died["worker"], died["pid"], died["exit_code"], died["ready"]) == (
        0,
        worker.pid,
        -9,
        True,
    )
    assert died["channel"] == "devnull"


async def test_a_process_that_ends_unasked_has_died_whatever_its_exit_code() -> None:
    p = Pool()
    p.running()
    with capture_logs() as logs:
        p.exit(0)
    assert p.slot.state is BACKOFF
    assert p.restarts == 1
    assert [e["event"] for e in logs if e["event"].startswith("worker.")] == ["worker.died"]
