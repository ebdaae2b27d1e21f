"""What the parent does with the workers' answers: applies them to the Store, acts on what they
say about the whole channel (a Retry-After cools it down, refused credentials make it
misconfigured), counts and logs each attempt. It also answers for the deliveries no worker will
answer for: given back unsent by the dispatcher, or held by a process that ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from notifierd.channels.condition import ChannelCondition
from notifierd.channels.pool import WorkerHandle
from notifierd.channels.rate_groups import Member, RateGroup
from notifierd.config import Channel
from notifierd.log_output import HotLine
from notifierd.messages import Delivery, Outcome
from notifierd.metrics import ChannelSeries
from notifierd.states import DeliveryState, OutcomeKind
from notifierd.store import Store

log = structlog.get_logger("notifierd.channel")
attempt_line = HotLine("notifierd.channel", "delivery.attempt")

Answered = list[tuple[Outcome, Delivery]]


class OutcomeHandler:
    """Applies one channel's outcomes. `member` is the channel as its rate group knows it."""

    def __init__(
        self,
        channel: Channel,
        store: Store,
        *,
        condition: ChannelCondition,
        rate_group: RateGroup,
        member: Member,
        series: ChannelSeries,
        on_store_error: Callable[[Exception], None],
    ) -> None:
        self._channel = channel
        self._store = store
        self._condition = condition
        self._rate = rate_group
        self._member = member
        self._series = series
        self._on_store_error = on_store_error
        self._pending_writes: set[asyncio.Task[None]] = set()

    def answered(self, process: WorkerHandle, outcomes: list[Outcome]) -> None:
        """`process` answered for some of the deliveries it holds."""
        answered = process.take_outcomes(outcomes)
        self.released([delivery for _, delivery in answered])
        if answered:
            self._write(self._apply(answered, process.pid))

    def give_back(self, deliveries: list[Delivery]) -> None:
        """Claimed deliveries that will not be handed out now go back to the queue, uncharged."""
        self._write(self._apply([(_unstarted(d), d) for d in deliveries], None))

    def orphaned(self, process: WorkerHandle, *, interrupted: bool) -> None:
        """`process` ended holding deliveries. The one it was sending counts as an attempt that
        crashed (so that a message that kills its worker ends DEAD), unless the process was
        stopped on purpose (`interrupted`); the rest were never started."""
        leftovers = list(process.in_flight.values())
        process.in_flight.clear()
        self.released(leftovers)
        if not leftovers:
            return
        current = process.current_delivery()
        answered = []
        for delivery in leftovers:
            if delivery.id == current and not interrupted:
                error = f"the worker process died (exit code {process.exitcode}) while sending"
                crashed = Outcome(
                    delivery.id, delivery.lease_token, OutcomeKind.CRASHED, error=error
                )
                answered.append((crashed, delivery))
            else:
                answered.append((_unstarted(delivery), delivery))
        self._write(self._apply(answered, None))

    def released(self, deliveries: list[Delivery]) -> None:
        """`deliveries` left their worker's hands (answered, or dropped): their recipients and
        their slots in the send window come free."""
        self._rate.finished(deliveries, self._store.now(), self._member)

    async def close(self) -> None:
        """Wait for the outcomes being written."""
        while self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)

    def _write(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    async def _apply(self, answered: Answered, worker_pid: int | None) -> None:
        now = self._store.now()
        outcomes = [outcome for outcome, _ in answered]
        try:
            states = await self._store.complete(outcomes, self._channel.retry, now)
        except Exception as exc:
            # The leases stay in the Store and lapse, so the deliveries are not lost.
            self._on_store_error(exc)
            return
        for (outcome, delivery), state in zip(answered, states, strict=True):
            if state is not None:
                self._after(outcome, delivery, state, worker_pid, now)
        self._member.wake()

    def _after(
        self, outcome: Outcome, delivery: Delivery, state: str, worker_pid: int | None, now: float
    ) -> None:
        """Count, log, and act on an outcome the Store applied (its delivery is now `state`)."""
        kind = outcome.kind
        if kind is OutcomeKind.UNSTARTED:
            return
        self._series.count_state(state)
        fields: dict[str, Any] = {
            "channel": self._channel.name,
            "delivery_id": outcome.id,
            "recipient": delivery.recipient,
            "attempt": delivery.attempt,
            "outcome": kind,
            "state": state,
            "duration_ms": round(outcome.duration * 1000, 1),
        }
        if worker_pid is not None:
            fields["worker_pid"] = worker_pid
        if outcome.error:
            fields["error"] = outcome.error
            self._condition.last_error = outcome.error
        if kind is OutcomeKind.DELIVERED:
            self._condition.works()
            self._series.observe_latency(now - delivery.created_at)
            attempt_line.write(logging.INFO, fields)
            return
        self._hold_back(kind, outcome.retry_after, now, fields)
        if kind is OutcomeKind.MISCONFIGURED:
            fields["retry_in"] = round(self._condition.refused(outcome.error), 3)
            log.error("channel.misconfigured", **fields)
            return
        attempt_line.write(
            logging.WARNING if state == DeliveryState.QUEUED else logging.ERROR, fields
        )

    def _hold_back(
        self, kind: OutcomeKind, retry_after: float | None, now: float, fields: dict[str, Any]
    ) -> None:
        """A remote's Retry-After holds back the whole channel, not only this delivery; a
        "slow down" every channel that spends its budget. A plain temporary failure's wait may
        be about one recipient (SMS.ru's per-number limit) and stays with its channel."""
        wait = retry_after
        if not wait and kind is OutcomeKind.RATE_LIMITED:
            wait = self._channel.retry.delay  # the remote named no time, but said "slow down"
        if wait is None:
            return
        if kind is OutcomeKind.RATE_LIMITED:
            self._rate.cool_down(now + wait)
        else:
            self._condition.cool_down(now + wait)
        fields["retry_after"] = wait


def _unstarted(delivery: Delivery) -> Outcome:
    return Outcome(delivery.id, delivery.lease_token, OutcomeKind.UNSTARTED)
