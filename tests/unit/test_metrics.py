"""The Prometheus series: per-channel children looked up once, counted by state."""

from __future__ import annotations

from notifierd.metrics import Metrics
from notifierd.states import DeliveryState
from notifierd.store.base import StoreCounts


def sample(metrics: Metrics, name: str, channel: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"channel": channel})


def test_series_exist_at_zero_from_the_start() -> None:
    metrics = Metrics(["a", "b"])
    for channel in ("a", "b"):
        assert sample(metrics, "notifierd_accepted_total", channel) == 0
        assert sample(metrics, "notifierd_delivered_total", channel) == 0
        assert sample(metrics, "notifierd_accept_to_delivered_seconds_count", channel) == 0


def test_counts_go_to_the_channel_and_state() -> None:
    metrics = Metrics(["a", "b"])
    metrics.channel("a").accepted += 1
    metrics.count_state("a", DeliveryState.DELIVERED)
    metrics.count_state("a", "delivered", 2)
    metrics.count_state("b", DeliveryState.QUEUED)  # a failed attempt put back: a retry
    metrics.count_state("b", DeliveryState.LEASED)  # not an outcome: counts nowhere
    metrics.channel("b").observe_latency(0.02)
    assert sample(metrics, "notifierd_accepted_total", "a") == 1
    assert sample(metrics, "notifierd_delivered_total", "a") == 3
    assert sample(metrics, "notifierd_delivered_total", "b") == 0
    assert sample(metrics, "notifierd_retried_total", "b") == 1
    assert sample(metrics, "notifierd_accept_to_delivered_seconds_count", "b") == 1
    assert metrics.channel("a") is metrics.channel("a")


def test_a_channel_not_known_at_start_gets_its_series() -> None:
    metrics = Metrics([])
    metrics.count_state("late", DeliveryState.DEAD)
    assert sample(metrics, "notifierd_dead_total", "late") == 1
    text = metrics.render({"late": StoreCounts()}, ["late"], paused=False, states={}).decode()
    assert 'notifierd_dead_total{channel="late"} 1.0' in text


def test_the_latency_histogram_counts_each_value_in_its_bucket_and_above() -> None:
    metrics = Metrics(["a"])
    for seconds in (0.02, 0.025, 1.0, 5000.0):  # a bound itself belongs to its own bucket
        metrics.channel("a").observe_latency(seconds)

    def bucket(le: str) -> float | None:
        return metrics.registry.get_sample_value(
            "notifierd_accept_to_delivered_seconds_bucket", {"channel": "a", "le": le}
        )

    assert bucket("0.01") == 0
    assert bucket("0.025") == 2
    assert bucket("0.5") == 2
    assert bucket("1.0") == 3
    assert bucket("3600.0") == 3
    assert bucket("+Inf") == 4
    assert sample(metrics, "notifierd_accept_to_delivered_seconds_count", "a") == 4
    assert sample(metrics, "notifierd_accept_to_delivered_seconds_sum", "a") == 5001.045
