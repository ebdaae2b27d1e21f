"""Prometheus metrics (`GET /metrics`): counters per channel, deliveries by state, the
accept-to-delivered latency, worker restarts, each channel's state, the maintenance flag, the
HTTP responses by route and status, the build and the process."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from notifierd import __version__
from notifierd.states import ChannelState, DeliveryState
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
OUTCOME_HELP = {"retried": "Failed attempts put back in the queue for a retry."}
BUCKET_LABELS = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]


class ChannelSeries:
    """One channel's per-message series, as plain numbers: they are counted for every message,
    and a prometheus_client child takes a lock and a method call or three at each increment
    (docs/performance.md). They are only ever touched on the
    event loop's thread; `HotSeries` turns them into Prometheus samples at each scrape."""

    __slots__ = ("accepted", "by_state", "latency_buckets", "latency_sum")

    def __init__(self) -> None:
        self.accepted = 0
        #: The count a delivery's new state adds to, by state value.
        self.by_state: dict[str, int] = {state.value: 0 for state in OUTCOME_COUNTERS}
        #: Observations per bucket (not cumulative), the last one +Inf.
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def count_state(self, state: str, number: int = 1) -> None:
        """Deliveries that reached `state` (states that are no outcome count nowhere)."""
        if state in self.by_state:
            self.by_state[state] += number

    def observe_latency(self, seconds: float) -> None:
        # The first bound at or above the value: a histogram's "le" bucket.
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class HotSeries(Collector):
    """The per-channel counters and latency histogram, read from `ChannelSeries` at scrape
    time: the same names, help, labels and samples as prometheus_client's own types give."""

    def __init__(self, series: dict[str, ChannelSeries]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        accepted = CounterMetricFamily(
            "notifierd_accepted", "Jobs accepted (answered 204).", labels=["channel"]
        )
        outcomes = {
            state.value: CounterMetricFamily(
                f"notifierd_{name}",
                OUTCOME_HELP.get(name, f"Deliveries that ended {name}."),
                labels=["channel"],
            )
            for state, name in OUTCOME_COUNTERS.items()
        }
        latency = HistogramMetricFamily(
            "notifierd_accept_to_delivered_seconds",
            "Time from the 204 to the remote's acceptance.",
            labels=["channel"],
        )
        for channel, series in list(self._series.items()):
            accepted.add_metric([channel], series.accepted)
            for state, count in series.by_state.items():
                outcomes[state].add_metric([channel], count)
            cumulative = list(accumulate(series.latency_buckets))
            latency.add_metric(
                [channel],
                list(zip(BUCKET_LABELS, map(float, cumulative), strict=True)),
                series.latency_sum,
            )
        yield accepted
        yield from outcomes.values()
        yield latency


class ResponseSeries(Collector):
    """HTTP responses by route pattern and status, counted as plain numbers by the access
    logger (every request passes there; a prometheus_client child would take a lock each)."""

    def __init__(self) -> None:
        #: (route pattern, status) -> responses
        self.counts: dict[tuple[str, int], int] = {}

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "notifierd_http_responses",
            "HTTP responses by route pattern and status.",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(self.counts.items()):
            family.add_metric([route, str(status)], count)
        yield family


class Metrics:
    def __init__(self, channels: list[str]) -> None:
        # The *_created series double the output and tell nothing a daemon's start time does not.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        labels = ["channel"]
        self._series: dict[str, ChannelSeries] = {}
        self.registry.register(HotSeries(self._series))
        self.http_responses = ResponseSeries()
        self.registry.register(self.http_responses)
        ProcessCollector(registry=self.registry)
        Gauge(
            "notifierd_build_info",
            "Always 1; the version of notifierd in its label.",
            ["version"],
            registry=self.registry,
        ).labels(__version__).set(1)
        self.channel_state = Gauge(
            "notifierd_channel_state",
            "1 for the state each channel is in, 0 for the others.",
            ["channel", "state"],
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
        # Every channel's series exist from the start, at zero, so that rates work at once.
        for channel in channels:
            self.worker_restarts.labels(channel)
            self.channel(channel)

    def channel(self, channel: str) -> ChannelSeries:
        series = self._series.get(channel)
        if series is None:
            series = self._series[channel] = ChannelSeries()
        return series

    def count_state(self, channel: str, state: str, number: int = 1) -> None:
        self.channel(channel).count_state(state, number)

    def render(
        self,
        counts: dict[str, StoreCounts],
        channels: list[str],
        paused: bool,
        states: Mapping[str, str],
    ) -> bytes:
        """The exposition text; `states` is each channel's `ChannelState` value."""
        for channel in channels:
            for state, number in counts.get(channel, StoreCounts()).by_state().items():
                self.deliveries.labels(channel, state).set(number)
        for channel, current in states.items():
            for state in ChannelState:
                self.channel_state.labels(channel, state.value).set(state == current)
        self.paused.set(1 if paused else 0)
        return generate_latest(self.registry)
