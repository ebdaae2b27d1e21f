"""Prometheus metrics (`GET /metrics`): counters per channel, deliveries by state, the
accept-to-delivered latency, worker restarts and the maintenance flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from notifierd.states import DeliveryState
from notifierd.store.base import StoreCounts

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
# Which counter a delivery's new state adds to (a requeue after a failed attempt is a retry).
OUTCOME_COUNTERS = {
    DeliveryState.DELIVERED: "delivered",
    DeliveryState.FAILED: "failed",
    DeliveryState.DEAD: "dead",
    DeliveryState.EXPIRED: "expired",
    DeliveryState.QUEUED: "retried",
}


@dataclass(frozen=True)
class ChannelSeries:
    """One channel's series, looked up once: `labels()` takes a lock and builds a key at every
    call, and these are touched for every message."""

    accepted: Any
    latency: Any
    #: The counter a delivery's new state adds to, by state value.
    by_state: dict[str, Any]


class Metrics:
    def __init__(self, channels: list[str]) -> None:
        # The *_created series double the output and tell nothing a daemon's start time does not.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        labels = ["channel"]
        self.accepted = Counter(
            "notifierd_accepted", "Jobs accepted (answered 204).", labels, registry=self.registry
        )
        self.outcomes = {
            name: Counter(
                f"notifierd_{name}",
                f"Deliveries that ended {name}.",
                labels,
                registry=self.registry,
            )
            for name in ("delivered", "failed", "dead", "expired")
        }
        self.outcomes["retried"] = Counter(
            "notifierd_retried",
            "Failed attempts put back in the queue for a retry.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "notifierd_accept_to_delivered_seconds",
            "Time from the 204 to the remote's acceptance.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.worker_restarts = Counter(
            "notifierd_worker_restarts",
            "Worker processes that died and were replaced.",
            labels,
            registry=self.registry,
        )
        self.deliveries = Gauge(
            "notifierd_deliveries",
            "Deliveries in the Store by state.",
            ["channel", "state"],
            registry=self.registry,
        )
        self.paused = Gauge(
            "notifierd_paused", "1 while in maintenance (paused).", registry=self.registry
        )
        self._series: dict[str, ChannelSeries] = {}
        # Every channel's series exist from the start, at zero, so that rates work at once.
        for channel in channels:
            self.worker_restarts.labels(channel)
            self.channel(channel)

    def channel(self, channel: str) -> ChannelSeries:
        series = self._series.get(channel)
        if series is None:
            series = ChannelSeries(
                self.accepted.labels(channel),
                self.latency.labels(channel),
                {
                    state.value: self.outcomes[name].labels(channel)
                    for state, name in OUTCOME_COUNTERS.items()
                },
            )
            self._series[channel] = series
        return series

    def count_state(self, channel: str, state: str, number: int = 1) -> None:
        counter = self.channel(channel).by_state.get(state)
        if counter is not None:
            counter.inc(number)

    def render(self, counts: dict[str, StoreCounts], channels: list[str], paused: bool) -> bytes:
        for channel in channels:
            for state, number in counts.get(channel, StoreCounts()).by_state().items():
                self.deliveries.labels(channel, state).set(number)
        self.paused.set(1 if paused else 0)
        return generate_latest(self.registry)
