"""The messages between the parent and a worker process, defined once.

Parent -> child, on the process's job queue: a `Handout` (a `Batch` of deliveries with the
offset from the Store's clock to `time.monotonic()`), or `STOP` (after what it holds, the
process ends).
Child -> parent, on its result pipe: `Ready`, `Outcomes`, `LogEvent` (a `ChildMessage`), each a
tuple tagged by its first item; readers `match` on the tag.

What crosses is made of plain values: pickle saves a named tuple or an enum member through
Python-level reduce calls and the unpickler calls their classes again, which costs several
times what the same fields cost as a tuple. So deliveries cross as tuples of their fields
(`to_batch`, `received`) and outcomes too, their kind as its string (`encode`, `decode`): one
of each per message, on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

from notifierd.messages import Delivery, Outcome
from notifierd.states import OutcomeKind

# -- parent -> child -------------------------------------------------------------------------

#: A `Delivery`'s fields, in order.
DeliveryFields = tuple[int, int, str, str, str, int, float, float, float]
Batch = list[DeliveryFields]
#: A batch and its `monotonic_offset`: a delivery's `leased_until` or `expires_at` (times on
#: the Store's clock, which may be another host's) plus this offset is the `time.monotonic()`
#: deadline the worker process compares with - never its own wall clock. One float a batch.
Handout = tuple[float, Batch]
#: On the job queue: a handout, or STOP.
JobMessage = Handout | None
STOP: Final = None


def to_batch(deliveries: Sequence[Delivery]) -> Batch:
    # A slice of a named tuple is a plain tuple of its fields.
    return [delivery[:] for delivery in deliveries]


def monotonic_offset(store_now: float, monotonic_now: float) -> float:
    """What turns a time on the Store's clock into a `time.monotonic()` deadline, from the two
    clocks read together."""
    return monotonic_now - store_now


def handout(deliveries: Sequence[Delivery], offset: float) -> Handout:
    return (offset, to_batch(deliveries))


def received(batch: Batch) -> list[Delivery]:
    """The deliveries of a batch, as the parent sent them."""
    return [Delivery._make(fields) for fields in batch]


# -- child -> parent -------------------------------------------------------------------------

READY: Final = "ready"
OUTCOMES: Final = "outcomes"
LOG: Final = "log"

#: The process started its worker and takes deliveries; with its pid.
Ready = tuple[Literal["ready"], int]
#: Answers for deliveries of the process's batches.
Outcomes = tuple[Literal["outcomes"], list[Outcome]]
#: A log event of the process, for the parent to write: its level and plain fields.
LogEvent = tuple[Literal["log"], str, dict[str, Any]]
ChildMessage = Ready | Outcomes | LogEvent

#: An `Outcome`'s fields, its kind as the kind's value.
OutcomeFields = tuple[int, int, str, float | None, str | None, float]
#: A `ChildMessage` as it crosses the pipe.
RawMessage = Ready | tuple[Literal["outcomes"], list[OutcomeFields]] | LogEvent

_KINDS: Final = {kind.value: kind for kind in OutcomeKind}


def ready(pid: int) -> Ready:
    return (READY, pid)


def outcomes(answered: list[Outcome]) -> Outcomes:
    return (OUTCOMES, answered)


def log_event(level: str, event: dict[str, Any]) -> LogEvent:
    return (LOG, level, event)


def encode(message: ChildMessage) -> RawMessage:
    """`message` as the child sends it."""
    if message[0] == OUTCOMES:
        return (
            OUTCOMES,
            [
                (o.id, o.lease_token, o.kind.value, o.retry_after, o.error, o.duration)
                for o in message[1]
            ],
        )
    return message


def decode(raw: RawMessage) -> ChildMessage:
    """A message as the child sent it (`encode`)."""
    if raw[0] == OUTCOMES:
        kinds = _KINDS
        return (
            OUTCOMES,
            [
                Outcome(i, token, kinds[kind], wait, error, took)
                for i, token, kind, wait, error, took in raw[1]
            ],
        )
    return raw
