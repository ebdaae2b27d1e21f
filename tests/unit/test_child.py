"""What a worker process does with one delivery (`run_send`), and the null worker's faults."""

from __future__ import annotations

import math
import multiprocessing
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from pydantic import ValidationError

from notifierd.errors import MAX_RETRY_AFTER, RateLimited, TemporaryFailure
from notifierd.messages import Delivery, Outcome
from notifierd.processes.child import _attempt, run_send
from notifierd.processes.wire import monotonic_offset, received
from notifierd.states import OutcomeKind
from notifierd.workers.base import Worker
from notifierd.workers.null import Fault, NullParams, NullWorker
from notifierd.workers.registry import UnknownWorker, installed_worker_names, load_worker_class


def delivery(message: str = "hello", attempt: int = 1, delivery_id: int = 7) -> Delivery:
    return Delivery(delivery_id, 99, "devnull", "r1", message, attempt)


def null_worker(*faults: dict[str, Any], **params: Any) -> NullWorker:
    return NullWorker("devnull", NullParams.model_validate({"faults": list(faults), **params}))


def check_identity(result: Outcome, sent: Delivery) -> None:
    assert (result.id, result.lease_token) == (sent.id, sent.lease_token)
    assert result.duration >= 0


def test_a_batch_crosses_as_tuples_and_arrives_whole() -> None:
    # What WorkerProcess.hand puts on the queue, through pickle as the queue's feeder sends it.
    sent = [
        delivery("привет", attempt=3, delivery_id=1),
        Delivery(2, 5, "devnull", "r2", "x", 1, 10.5, 11.5, 9.5),
    ]
    wire = pickle.loads(pickle.dumps([tuple(d) for d in sent]))
    got = received(wire)
    assert got == sent
    assert all(type(d) is Delivery for d in got)
    assert got[0].expires_at == float("inf")


def test_delivered() -> None:
    sent = delivery()
    result = run_send(null_worker(), sent)
    check_identity(result, sent)
    assert (result.kind, result.error, result.retry_after) == ("delivered", None, None)


@pytest.mark.parametrize(
    ("fault", "kind", "retry_after"),
    [
        ({"kind": "temporary"}, OutcomeKind.TEMPORARY, None),
        ({"kind": "permanent"}, OutcomeKind.PERMANENT, None),
        ({"kind": "misconfigured"}, OutcomeKind.MISCONFIGURED, None),
        ({"kind": "retry_after", "retry_after": 7.5}, OutcomeKind.TEMPORARY, 7.5),
        ({"kind": "retry_after"}, OutcomeKind.TEMPORARY, 1.0),
        ({"kind": "rate_limited", "retry_after": 2.0}, OutcomeKind.RATE_LIMITED, 2.0),
    ],
)
def test_fault_outcomes(
    fault: dict[str, Any], kind: OutcomeKind, retry_after: float | None
) -> None:
    sent = delivery()
    result = run_send(null_worker(fault), sent)
    check_identity(result, sent)
    assert result.kind == kind.value
    assert result.retry_after == retry_after
    assert result.error is not None
    assert "null worker" in result.error


def test_hang_then_delivered() -> None:
    result = run_send(null_worker({"kind": "hang", "seconds": 0.01}), delivery())
    assert result.kind == "delivered"
    assert result.duration >= 0.01


def test_send_seconds_is_the_duration() -> None:
    result = run_send(null_worker(send_seconds=0.02), delivery())
    assert result.kind == "delivered"
    assert result.duration >= 0.02


class RaisingWorker(Worker):
    def __init__(self, error: BaseException) -> None:
        super().__init__("broken", NullParams())
        self.error = error

    def send(self, delivery: Delivery) -> None:
        raise self.error


def test_unexpected_exception_is_temporary_with_its_text() -> None:
    sent = delivery()
    result = run_send(RaisingWorker(ValueError("bad value 42")), sent)
    check_identity(result, sent)
    assert result.kind == OutcomeKind.TEMPORARY.value
    assert result.retry_after is None
    assert result.error is not None
    assert "ValueError" in result.error
    assert "bad value 42" in result.error


def test_temporary_failure_keeps_retry_after() -> None:
    result = run_send(RaisingWorker(TemporaryFailure("slow down", retry_after=3.0)), delivery())
    assert (result.kind, result.error, result.retry_after) == ("temporary", "slow down", 3.0)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (None, None),
        (4.0, 4.0),
        (0.0, 0.0),
        (-5.0, 0.0),
        (10 * 86400.0, MAX_RETRY_AFTER),  # ten days: the channel asks again after an hour
        (float("inf"), MAX_RETRY_AFTER),
        (float("nan"), None),
    ],
)
def test_a_plugin_raising_rate_limited_is_not_charged(
    given: float | None, kept: float | None
) -> None:
    """One exception is all a plugin needs; the remote's Retry-After is bounded on the way."""
    result = run_send(RaisingWorker(RateLimited("429 slow down", retry_after=given)), delivery())
    assert (result.kind, result.error, result.retry_after) == (
        "rate_limited",
        "429 slow down",
        kept,
    )


def test_keyboard_interrupt_is_not_swallowed() -> None:
    with pytest.raises(KeyboardInterrupt):
        run_send(RaisingWorker(KeyboardInterrupt()), delivery())


# -- fault matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message", "attempt", "applies"),
    [
        ({"kind": "temporary"}, "anything", 1, True),
        ({"kind": "temporary"}, "anything", 50, True),  # times 0: every attempt
        ({"kind": "temporary", "times": 2}, "x", 1, True),
        ({"kind": "temporary", "times": 2}, "x", 2, True),
        ({"kind": "temporary", "times": 2}, "x", 3, False),
        ({"kind": "temporary", "match": "fail"}, "please fail now", 1, True),  # search
        ({"kind": "temporary", "match": "^fail"}, "please fail now", 1, False),
        ({"kind": "temporary", "match": "Привет"}, "Привет, мир", 1, True),
        ({"kind": "temporary", "match": "fail"}, "ok", 1, False),
        ({"kind": "temporary", "match": "a\\d+", "times": 1}, "xa12", 1, True),
        ({"kind": "temporary", "match": "a\\d+", "times": 1}, "xa12", 2, False),
    ],
)
def test_fault_applies(fault: dict[str, Any], message: str, attempt: int, applies: bool) -> None:
    assert Fault.model_validate(fault).applies(delivery(message, attempt)) is applies


def test_faults_with_times_then_delivered() -> None:
    worker = null_worker({"kind": "temporary", "times": 2})
    kinds = [run_send(worker, delivery(attempt=n)).kind for n in (1, 2, 3)]
    assert kinds == ["temporary", "temporary", "delivered"]


def test_first_matching_fault_wins() -> None:
    worker = null_worker(
        {"kind": "permanent", "match": "refuse"},
        {"kind": "temporary"},
    )
    assert run_send(worker, delivery("please refuse")).kind == "permanent"
    assert run_send(worker, delivery("other")).kind == "temporary"


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "temporary", "times": -1},
        {"kind": "retry_after", "retry_after": 0},
        {"kind": "temporary", "bogus": 1},
    ],
)
def test_invalid_faults(fault: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Fault.model_validate(fault)


def test_crash_fault_kills_the_process() -> None:
    script = textwrap.dedent(
        """
        from notifierd.messages import Delivery
        from notifierd.processes.child import run_send
        from notifierd.workers.null import NullParams, NullWorker
        worker = NullWorker("c", NullParams.model_validate({"faults": [{"kind": "crash"}]}))
        run_send(worker, Delivery(1, 1, "c", "", "m", 1))
        print("survived")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == -signal.SIGKILL
    assert "survived" not in completed.stdout


# -- the null worker and the registry -------------------------------------------------------------


def test_fail_on_open() -> None:
    with pytest.raises(RuntimeError, match="fail_on_open"):
        null_worker(fail_on_open=True).open()
    null_worker().open()


def test_null_recipients() -> None:
    assert NullWorker.recipients(NullParams()) == [""]
    assert NullWorker.recipients(NullParams(recipients=["a", "b"])) == ["a", "b"]


def test_registry() -> None:
    assert load_worker_class("null") is NullWorker
    assert load_worker_class("notifierd.workers.null:NullWorker") is NullWorker
    assert "null" in installed_worker_names()
    with pytest.raises(UnknownWorker, match=r"installed: .*null"):
        load_worker_class("nope")
    with pytest.raises(UnknownWorker, match="not a subclass"):
        load_worker_class("notifierd.messages:Delivery")


#: The Store's clock (another host's, the database's) an hour off this host's, both ways.
@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_lease_end_and_expiry_are_monotonic_deadlines_from_the_stores_clock(skew: float) -> None:
    store_now = time.time() + skew
    offset = monotonic_offset(store_now, time.monotonic())
    cooldown = multiprocessing.Value("d", 0.0)

    def attempt(leased_for: float, expires_in: float = math.inf) -> Outcome:
        expires_at, leased_until = store_now + expires_in, store_now + leased_for
        sent = Delivery(7, 99, "devnull", "r1", "m", 1, expires_at, leased_until)
        return _attempt(null_worker(), sent, offset, cooldown)

    assert attempt(leased_for=30).kind is OutcomeKind.DELIVERED
    # Past its lease's deadline on the Store's clock, whatever this host's wall clock says.
    assert attempt(leased_for=-0.001).kind is OutcomeKind.UNSTARTED
    expired = attempt(leased_for=30, expires_in=-0.001)
    assert expired.kind is OutcomeKind.EXPIRED
    assert attempt(leased_for=30, expires_in=30).kind is OutcomeKind.DELIVERED
