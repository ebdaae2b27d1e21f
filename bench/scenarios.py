"""The scenarios of `python -m bench`. Each starts its own server(s) with a fresh state dir,
measures, stops them, and adds rows to the report."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median

from bench import instructions as counted
from bench.backlog import write_backlog
from bench.load import LoadResult, run_wrk
from bench.servers import (
    CHANNEL,
    ROOT,
    Baseline,
    Notifierd,
    children_cpu_seconds,
    count_jobs,
    cpu_seconds,
    delivered,
    delivery_times,
    rss_mb,
    wait_until,
)

CONNECTIONS = 32
VS_BASELINE = (">= 0.8x baseline", 0.8)


@dataclass(frozen=True)
class Sizes:
    """How much load each scenario makes; `quick` is for the CI smoke test."""

    duration: float
    warmup: float
    messages: int
    steady_rate: float
    steady_seconds: float
    backlog: int
    #: Requests counted by callgrind (instructions per request).
    counted: int
    #: Rounds of (baseline, intake) per load generator; the ratio is their median.
    repeat: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            duration=10.0,
            warmup=1.0,
            messages=50_000,
            steady_rate=500.0,
            steady_seconds=10.0,
            backlog=1_000_000,
            counted=2_000,
            repeat=3,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            duration=0.5,
            warmup=0.2,
            messages=300,
            steady_rate=100.0,
            steady_seconds=1.0,
            backlog=2_000,
            counted=100,
            repeat=1,
        )


@dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    target: str = ""
    verdict: str = ""


CLIENT_NAMES = {"wrk": "wrk", "aiohttp": "aiohttp client", "raw": "raw asyncio client"}


@dataclass
class Report:
    sizes: Sizes
    #: The load generators the intake is compared with, each against its own baseline.
    clients: tuple[str, ...] = ("aiohttp",)
    rows: list[Row] = field(default_factory=list)
    #: Figures other scenarios compare with: "baseline:<client>".
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The PostgreSQL server of the pg-* scenarios (`--store-url`; bench.cluster).
    store_url: str | None = None

    @property
    def client(self) -> str:
        """The generator of the scenarios that need a request count or a rate (wrk cannot):
        the lightest one asked for, so that it takes the least of the machine from the
        daemon whose delivery rate is measured."""
        for candidate in ("raw", "aiohttp"):
            if candidate in self.clients:
                return candidate
        return "raw"

    def add(self, scenario: str, figure: str, target: str = "", verdict: str = "") -> None:
        self.rows.append(Row(scenario, figure, target, verdict))

    def check_statuses(self, scenario: str, result: LoadResult) -> None:
        if result.non_204:
            self.notes.append(
                f"{scenario}: {result.non_204} responses were not 204: {result.statuses}"
                f" (+{result.errors} connection errors)"
            )


def load(
    url: str | Sequence[str],
    *,
    client: str,
    duration: float | None = None,
    count: int | None = None,
    rate: float | None = None,
    connections: int = CONNECTIONS,
) -> LoadResult:
    """Run the load generator in a process of its own (it must not share a core's GIL with
    this one, which polls and reads the Store). The result tells the CPU time it used."""
    before = children_cpu_seconds()
    result = _run_generator(
        url, client, duration=duration, count=count, rate=rate, connections=connections
    )
    return replace(result, generator_cpu_s=children_cpu_seconds() - before)


def _run_generator(
    url: str | Sequence[str],
    client: str,
    *,
    duration: float | None,
    count: int | None,
    rate: float | None,
    connections: int,
) -> LoadResult:
    if client == "wrk":
        if duration is None or count is not None or rate is not None:
            raise ValueError("wrk runs for a duration, not for a count or at a rate")
        if not isinstance(url, str):
            raise ValueError("wrk drives one URL")
        return run_wrk(url, connections, duration)
    urls = [url] if isinstance(url, str) else list(url)
    args = [sys.executable, "-m", "bench.load", *urls, "--connections", str(connections)]
    args += ["--client", client]
    if duration is not None:
        args += ["--duration", str(duration)]
    if count is not None:
        args += ["--count", str(count)]
    if rate is not None:
        args += ["--rate", str(rate)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return LoadResult(**json.loads(done.stdout))


def verdict(ok: bool, ratio: float | None = None) -> str:
    mark = "pass" if ok else "MISS"
    return f"{ratio:.2f}x {mark}" if ratio is not None else mark


@contextmanager
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="notifierd-bench-") as path:
        yield Path(path)


@contextmanager
def daemon(
    path: Path, processes: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[Notifierd, float]]:
    server = Notifierd(path, processes, env)
    try:
        took = server.start()
        wait_until(lambda: server.workers_ready(processes), "the workers to be ready")
        yield server, took
    finally:
        server.stop()


def send_url(server: Notifierd | Baseline) -> str:
    return server.url(f"/api/send/{CHANNEL}")


@dataclass(frozen=True)
class Measured:
    """One intake measurement: requests per second, and the CPU time the server's processes
    spent per request meanwhile (microseconds, all threads; for notifierd the parent and its
    workers apart). CPU per request hardly depends on what else the machine is doing, unlike
    the rate: it shows where a shared machine's rate would go with a core to itself."""

    rate: float
    parent_cpu_us: float
    workers_cpu_us: float = 0.0
    #: The load generator's CPU per request: it shares the machine's cores with the server.
    generator_cpu_us: float = 0.0


class CpuMeter:
    """CPU time of some processes between `__init__` and `per_request`."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = [cpu_seconds(pid) for pid in pids]

    def per_request(self, requests: int) -> list[float]:
        pairs = zip(self.pids, self.start, strict=True)
        spent = [cpu_seconds(pid) - before for pid, before in pairs]
        return [seconds * 1e6 / max(1, requests) for seconds in spent]


def measure_baseline(
    report: Report, client: str, uvloop: bool = False, durable: Path | None = None
) -> Measured:
    sizes = report.sizes
    server = Baseline(uvloop=uvloop, durable=durable)
    server.start()
    assert server.process is not None
    try:
        load(send_url(server), client=client, duration=sizes.warmup)
        meter = CpuMeter([server.process.pid])
        result = load(send_url(server), client=client, duration=sizes.duration)
        (cpu,) = meter.per_request(result.requests)
    finally:
        server.stop()
    kind = "durable floor" if durable else "baseline"
    report.check_statuses(f"{kind} ({client}{', uvloop' if uvloop else ''})", result)
    return Measured(result.rate, cpu, generator_cpu_us=_per_request(result))


def _per_request(result: LoadResult) -> float:
    """The generator's CPU per request, in microseconds."""
    return result.generator_cpu_s * 1e6 / max(1, result.requests)


def measure_floor(report: Report, client: str) -> Measured:
    """The durable floor (see bench.baseline_app) on uvloop, as notifierd runs."""
    with state_dir() as path:
        return measure_baseline(report, client, uvloop=True, durable=path / "floor.db")


def measure_intake(report: Report, server: Notifierd, name: str, client: str) -> Measured:
    sizes = report.sizes
    load(send_url(server), client=client, duration=sizes.warmup)
    warm = count_jobs(server.database)
    meter = CpuMeter([server.pid, *server.worker_pids()])
    result = load(send_url(server), client=client, duration=sizes.duration)
    parent_cpu, *workers_cpu = meter.per_request(result.requests)
    report.check_statuses(name, result)
    # Every 204 is a committed job: the Store must hold a job for each 204. (wrk stops with
    # requests in flight that it does not count, after the warm-up and after the run: up to
    # one per connection each time may be stored more.)
    stored = count_jobs(server.database, warm)
    accepted = result.accepted
    extra = 2 * CONNECTIONS if client == "wrk" else 0
    if not accepted <= stored <= accepted + extra:
        report.notes.append(f"{name}: {accepted} 204s but {stored} jobs")
    return Measured(result.rate, parent_cpu, sum(workers_cpu), _per_request(result))


def measure_stopped(report: Report, server: Notifierd, client: str) -> Measured:
    """Intake with the channel stopped (`notifierctl stop`): it still accepts and stores every
    message, but the parent claims, hands over and records nothing. No way of moving the
    delivery's work out of the parent could make intake faster than this."""
    server.control("stop", CHANNEL)
    wait_until(lambda: not server.worker_pids(), "the stopped channel's workers to end")
    measured = measure_intake(report, server, "intake, channel stopped", client)
    if delivered(server.database):
        report.notes.append("intake, channel stopped: messages were delivered")
    return measured


def intake(report: Report) -> None:
    """Intake against the bare baseline, for each load generator: rounds of (baseline,
    intake) one after the other, so that both meet the same moments of a shared machine. The
    verdict is on the median of the rounds' ratios; every ratio is shown."""
    rounds = report.sizes.repeat
    off = {"NOTIFIERD_ACCESS_LOG": "false"}
    primary = report.clients[0]
    quiet_ratios: list[float] = []
    floors: list[Measured] = []
    stopped: list[Measured] = []
    for client in report.clients:
        bases: list[Measured] = []
        intakes: list[Measured] = []
        for _ in range(rounds):
            bases.append(measure_baseline(report, client))
            with state_dir() as path, daemon(path) as (server, _):
                intakes.append(measure_intake(report, server, f"intake ({client})", client))
            if client == primary:  # the access log off, against the same round's baseline
                with state_dir() as path, daemon(path, env=off) as (server, _):
                    quiet = measure_intake(report, server, "intake, access log off", client)
                quiet_ratios.append(_ratio(quiet.rate, bases[-1].rate))
                floors.append(measure_floor(report, client))
                with state_dir() as path, daemon(path) as (server, _):
                    stopped.append(measure_stopped(report, server, client))
        rates = [base.rate for base in bases]
        report.figures[f"baseline:{client}"] = median(rates)
        report.add(
            f"baseline: bare aiohttp, same route, 32 conns ({CLIENT_NAMES[client]})",
            _rates(rates),
            "reference",
            "1.00x",
        )
        name = CLIENT_NAMES[client]
        label = f"intake: POST /api/send, FULL sync, null worker on ({name})"
        ratios = [_ratio(got.rate, base.rate) for got, base in zip(intakes, bases, strict=True)]
        _ratio_row(report, label, rates, ratios, VS_BASELINE)
        _cpu_row(report, name, bases, intakes)
        if client == primary:
            label = f"  intake, access log off ({name})"
            _ratio_row(report, label, rates, quiet_ratios, VS_BASELINE)
            _floor_rows(report, name, bases, intakes, floors)
            _ceiling_rows(report, name, bases, intakes, stopped)
    if importlib.util.find_spec("uvloop") is not None:
        # notifierd runs on uvloop when it is installed: show what that alone gives aiohttp.
        fast = measure_baseline(report, primary, uvloop=True).rate
        plain = report.figures[f"baseline:{primary}"]
        report.add(
            f"  the bare baseline on uvloop, for reference ({CLIENT_NAMES[primary]})",
            f"{fast:,.0f} req/s",
            "",
            f"{fast / plain:.2f}x" if plain else "",
        )


def _floor_rows(
    report: Report,
    client: str,
    bases: list[Measured],
    intakes: list[Measured],
    floors: list[Measured],
) -> None:
    """The durable floor against the bare baseline (what storing before the 204 costs at the
    least), and notifierd against the floor (what notifierd adds to that)."""
    ratios = [_ratio(f.rate, base.rate) for f, base in zip(floors, bases, strict=True)]
    report.add(
        f"  durable floor: bare aiohttp + a group-committed insert, uvloop ({client})",
        _rounds([f.rate for f in floors], ratios),
        "",
        f"{median(ratios):.2f}x",
    )
    cpu = median(f.parent_cpu_us for f in floors)
    parent = median(m.parent_cpu_us for m in intakes)
    above = [_ratio(got.rate, f.rate) for got, f in zip(intakes, floors, strict=True)]
    report.add(
        f"  notifierd's intake against the durable floor ({client})",
        f"ratios {_listed(above)}; CPU {cpu:,.0f} us vs {parent:,.0f} us",
        "",
        f"{median(above):.2f}x",
    )


def _ceiling_rows(
    report: Report,
    client: str,
    bases: list[Measured],
    intakes: list[Measured],
    stopped: list[Measured],
) -> None:
    """Two ceilings on the intake ratio, from this run's figures.

    With the channel stopped, the parent does the intake's work only: the most that moving the
    delivery's work elsewhere could give. And the load generator shares the machine's cores:
    were notifierd's whole CPU per request (parent and workers, T) spread perfectly over all of
    them beside the generator's (W), its rate could at most be cores / (T + W), whatever the
    split between processes; the bare app's is its measured rate (it keeps one core busy)."""
    ratios = [_ratio(got.rate, base.rate) for got, base in zip(stopped, bases, strict=True)]
    cpu = median(m.parent_cpu_us for m in stopped)
    base_cpu = median(m.parent_cpu_us for m in bases)
    report.add(
        f"  intake, the channel stopped: the parent does no delivery work ({client})",
        f"{_rounds([m.rate for m in stopped], ratios)}; CPU {cpu:,.0f} us"
        f" (the baseline's {base_cpu:,.0f} us: {_ratio(base_cpu, cpu):.2f}x)",
        "",
        f"{median(ratios):.2f}x",
    )
    cores = os.cpu_count() or 1
    bounds = [
        _ratio(cores * 1e6 / (m.parent_cpu_us + m.workers_cpu_us + m.generator_cpu_us), base.rate)
        for m, base in zip(intakes, bases, strict=True)
    ]
    total = median(m.parent_cpu_us + m.workers_cpu_us for m in intakes)
    generator = median(m.generator_cpu_us for m in intakes)
    report.add(
        f"  {cores} cores shared perfectly: the most notifierd's CPU allows ({client})",
        f"notifierd {total:,.0f} us + the generator {generator:,.0f} us per request",
        "",
        f"{median(bounds):.2f}x",
    )


def _ratio(rate: float, reference: float) -> float:
    return rate / reference if reference else 0.0


def _cpu_row(report: Report, client: str, bases: list[Measured], intakes: list[Measured]) -> None:
    """CPU per request, medians of the rounds: the baseline's process against notifierd's
    parent (its workers apart). Their ratio is the rate ratio a core to itself would allow."""
    base = median(m.parent_cpu_us for m in bases)
    parent = median(m.parent_cpu_us for m in intakes)
    workers = median(m.workers_cpu_us for m in intakes)
    report.add(
        f"  CPU per request: baseline vs notifierd's parent ({client})",
        f"{base:,.0f} us vs {parent:,.0f} us (+ {workers:,.0f} us in the worker)",
        "",
        f"{_ratio(base, parent):.2f}x",
    )


def _rates(rates: list[float]) -> str:
    if len(rates) == 1:
        return f"{rates[0]:,.0f} req/s"
    return f"{median(rates):,.0f} req/s (median of {', '.join(f'{r:,.0f}' for r in rates)})"


def _ratio_row(
    report: Report,
    label: str,
    references: list[float],
    ratios: list[float],
    target: tuple[str, float],
) -> None:
    """A row of rounds: the rates (median and each), each round's ratio to its reference,
    and the verdict on the median ratio against `target` (its text and its minimum)."""
    rates = [ratio * reference for ratio, reference in zip(ratios, references, strict=True)]
    ratio = median(ratios)
    text, minimum = target
    report.add(label, _rounds(rates, ratios), text, verdict(ratio >= minimum, ratio))


def _rounds(rates: list[float], ratios: list[float]) -> str:
    """The rates of the rounds (median and each) and, with more than one, each one's ratio."""
    return _rates(rates) + (f"; ratios {_listed(ratios)}" if len(ratios) > 1 else "")


def _listed(ratios: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in ratios)


def end_to_end(report: Report) -> None:
    sizes = report.sizes
    for processes in (1, 2):
        with state_dir() as path, daemon(path, processes) as (server, _):
            result = load(send_url(server), client=report.client, count=sizes.messages)
            report.check_statuses(f"end-to-end processes={processes}", result)
            accepted = result.accepted
            wait_until(
                lambda server=server, accepted=accepted: delivered(server.database) >= accepted,
                "every message to be delivered",
                timeout=600,
            )
            last = max(updated for _, updated in delivery_times(server.database))
        seconds = last - result.started_at
        rate = accepted / seconds
        report.add(
            f"end-to-end: {accepted:,} messages, processes: {processes}",
            f"{rate:,.0f} deliveries/s ({seconds:.1f} s; intake {result.rate:,.0f} req/s)",
            ">= 5,000/s",
            verdict(rate >= 5000, rate / 5000),
        )
    with state_dir() as path, daemon(path) as (server, _):
        count = int(sizes.steady_rate * sizes.steady_seconds)
        result = load(send_url(server), client=report.client, count=count, rate=sizes.steady_rate)
        report.check_statuses("latency", result)
        accepted = result.accepted
        wait_until(lambda: delivered(server.database) >= accepted, "every message to be delivered")
        latencies = sorted(done - created for created, done in delivery_times(server.database))
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    report.add(
        f"accept->delivered at {sizes.steady_rate:.0f} msg/s, {accepted:,} messages",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        "p99 <= 50 ms",
        verdict(p99 <= 50, 50 / p99 if p99 else None),
    )


def startup(report: Report) -> None:
    with state_dir() as path:
        server = Notifierd(path)
        try:
            took = server.start()
        finally:
            server.stop()
    report.add(
        "start-up to 204 on /api/ping, empty Store", f"{took:.2f} s", "<= 3 s", verdict(took <= 3)
    )


def backlog(report: Report) -> None:
    sizes = report.sizes
    with state_dir() as path:
        server = Notifierd(path)
        wrote = write_backlog(server.database, CHANNEL, sizes.backlog, delay=3600, ttl=86400)
        report.notes.append(
            f"backlog: {sizes.backlog:,} delayed deliveries written into the Store in {wrote:.1f} s"
        )
        try:
            took = server.start()
            wait_until(lambda: server.workers_ready(1), "the worker to be ready")
            report.add(
                f"start-up with {sizes.backlog:,} delayed deliveries",
                f"{took:.2f} s",
                "<= 3 s",
                verdict(took <= 3),
            )
            client = report.clients[0]
            # Rounds of (empty Store, this backlog), one after the other, as for intake.
            empties: list[float] = []
            ratios: list[float] = []
            for _ in range(sizes.repeat):
                with state_dir() as fresh, daemon(fresh) as (empty, _):
                    got = measure_intake(report, empty, "intake, empty Store", client)
                empties.append(got.rate)
                rate = measure_intake(report, server, "intake with backlog", client).rate
                ratios.append(_ratio(rate, empties[-1]))
            parent = rss_mb(server.pid)
            child = max(rss_mb(pid) for pid in server.worker_pids())
            label = f"intake with {sizes.backlog:,} delayed deliveries ({CLIENT_NAMES[client]})"
            _ratio_row(report, label, empties, ratios, (">= 0.9x empty-Store intake", 0.9))
            report.add(
                "  RSS with the backlog: parent / one worker",
                f"{parent:.0f} MB / {child:.0f} MB",
                "parent <= 150 MB",
                verdict(parent <= 150),
            )
            stop = server.stop()
            again = server.start()
            report.add(
                "  restart with the backlog: stop + start to 204",
                f"{stop:.2f} s + {again:.2f} s",
                "start <= 3 s",
                verdict(again <= 3),
            )
        finally:
            server.stop()


def instructions(report: Report) -> None:
    """Instructions per request under callgrind: the bare baseline's process against
    notifierd's parent, every counted message delivered before the counting stops."""
    if not counted.installed():
        report.notes.append(
            "valgrind is not installed (apt install valgrind): no instruction counts"
        )
        return
    sizes = report.sizes
    warmup = max(50, sizes.counted // 10)
    slow = 600.0  # everything runs some fifty times slower under callgrind
    baseline = _count_baseline(report, warmup)
    with state_dir() as path:
        floor = _count_baseline(report, warmup, durable=path / "floor.db")
    with counted.callgrind() as meter, state_dir() as path:
        server = Notifierd(path, prefix=meter.prefix)
        try:
            server.start()
            wait_until(lambda: server.workers_ready(1), "the worker to be ready", slow)
            warm = load(send_url(server), client=report.client, count=warmup).accepted
            wait_until(lambda: delivered(server.database) >= warm, "the warm-up", slow)
            with meter.counting(server.pid):
                result = load(send_url(server), client=report.client, count=sizes.counted)
                done = warm + result.accepted
                wait_until(lambda: delivered(server.database) >= done, "the deliveries", slow)
        finally:
            server.stop()
        report.check_statuses("instructions, notifierd", result)
        parent = meter.total() / max(1, result.requests)
    report.add(
        f"instructions per request (callgrind), {sizes.counted:,} requests: bare aiohttp",
        f"{baseline:,.0f}",
        "reference",
        "1.00x",
    )
    report.add(
        "  durable floor: bare aiohttp + a group-committed insert, uvloop",
        f"{floor:,.0f}",
        "",
        f"{_ratio(baseline, floor):.2f}x",
    )
    report.add(
        "  notifierd's parent, each message stored, delivered and logged",
        f"{parent:,.0f}",
        "",
        f"{_ratio(baseline, parent):.2f}x",
    )


def _count_baseline(report: Report, warmup: int, durable: Path | None = None) -> float:
    """Instructions per request of the bare baseline's process (or, with `durable`, of the
    durable floor's, on uvloop)."""
    with counted.callgrind() as meter:
        base = Baseline(prefix=meter.prefix, uvloop=durable is not None, durable=durable)
        base.start()
        assert base.process is not None
        try:
            load(send_url(base), client=report.client, count=warmup)
            with meter.counting(base.process.pid):
                result = load(send_url(base), client=report.client, count=report.sizes.counted)
        finally:
            base.stop()
        report.check_statuses(f"instructions, {'durable floor' if durable else 'baseline'}", result)
        return meter.total() / max(1, result.requests)


SCENARIOS: dict[str, Callable[[Report], None]] = {
    "intake": intake,
    "end-to-end": end_to_end,
    "startup": startup,
    "backlog": backlog,
    "instructions": instructions,
}
