"""The PostgreSQL scenarios of `python -m bench --store-url postgresql://...` (issue 16): each
makes its own database on that server and drops it afterwards.

- pg-intake   one host's intake on PostgreSQL against SQLite's, in alternating rounds (as the
              intake scenario compares with its baseline), the null worker delivering; CPU per
              request of the parent, the worker, the database server and the generator
- pg-cluster  three daemons (own ports and state dirs) on one database: the server's CPU while
              they idle; accept->delivered latency at a fixed rate offered round-robin to the
              three, then offered to one of them (any may deliver); who delivered how many
- pg-costs    one host: the database server's CPU per message for the intake alone (the
              channel stopped) and for the claims and outcomes alone (the backlog delivered)

Then, from the figures of pg-intake and pg-cluster (and pg-costs), a capacity model: how
many hosts one PostgreSQL of N cores carries (`bench.capacity`).
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from statistics import median

from bench import pg
from bench.scenarios import (
    CLIENT_NAMES,
    CpuMeter,
    Measured,
    Report,
    _rates,
    _ratio,
    _ratio_row,
    daemon,
    load,
    measure_intake,
    send_url,
    state_dir,
    verdict,
)
from bench.servers import CHANNEL, START_TIMEOUT, Notifierd

HOSTS = 3
#: Statements shown in the per-statement figures (pg_stat_statements).
TOP_STATEMENTS = 8
VS_SQLITE = (">= 0.6x SQLite", 0.6)
P99_TARGET_MS = 50.0
DELIVERED_SAMPLE = f'notifierd_delivered_total{{channel="{CHANNEL}"}}'


def store_env(database: pg.Database) -> dict[str, str]:
    return {"NOTIFIERD_STORE_URL": database.url}


def store_url(report: Report) -> str:
    if report.store_url is None:
        raise RuntimeError("the PostgreSQL scenarios need --store-url postgresql://...")
    return report.store_url


def poll(condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """`condition` every 20 ms until true (its reads share the machine being measured)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Costs:
    """CPU per message, microseconds: the host's parent and worker(s), the database's backends
    and the server's background writers (None: the server is not on this machine)."""

    parent: float
    workers: float
    server: float | None
    background: float | None

    def text(self) -> str:
        server = "n/a" if self.server is None else f"{self.server:,.0f} us"
        background = (
            "" if self.background is None else f" + {self.background:,.0f} us background writers"
        )
        worker = f" + worker {self.workers:,.0f} us" if self.workers else ""
        return f"parent {self.parent:,.0f} us{worker}; database server {server}{background}"


# -- pg-intake --------------------------------------------------------------------------------


def pg_intake_once(
    report: Report, server: Notifierd, database: pg.Database, client: str
) -> tuple[Measured, pg.ServerCpu, int]:
    """As `measure_intake`, the Store being PostgreSQL: also the server's CPU, and the
    requests it is divided by."""
    sizes = report.sizes
    load(send_url(server), client=client, duration=sizes.warmup)
    warm = database.last_job_id()
    meter = CpuMeter([server.pid, *server.worker_pids()])
    sampler = pg.CpuSampler(database).start()
    result = load(send_url(server), client=client, duration=sizes.duration)
    cpu = sampler.stop()
    parent, *workers = meter.per_request(result.requests)
    report.check_statuses("postgres intake", result)
    stored = database.count_jobs(warm)
    if stored != result.accepted:
        report.notes.append(f"postgres intake: {result.accepted} 204s but {stored} jobs")
    generator = result.generator_cpu_s * 1e6 / max(1, result.requests)
    return Measured(result.rate, parent, sum(workers), generator), cpu, result.requests


def pg_intake(report: Report) -> None:
    """One host on PostgreSQL against one on SQLite, in rounds, each round SQLite then
    PostgreSQL (a fresh database each time), so that both meet the same moments."""
    url = store_url(report)
    client = report.client
    lites: list[Measured] = []
    posts: list[Measured] = []
    servers: list[Costs] = []
    for _ in range(report.sizes.repeat):
        with state_dir() as path, daemon(path) as (server, _):
            lites.append(measure_intake(report, server, f"sqlite intake ({client})", client))
        with (
            pg.fresh_database(url) as database,
            state_dir() as path,
            daemon(path, env=store_env(database)) as (server, _),
        ):
            measured, cpu, requests = pg_intake_once(report, server, database, client)
        posts.append(measured)
        backends, background = cpu.per_message_us(requests)
        servers.append(Costs(measured.parent_cpu_us, measured.workers_cpu_us, backends, background))
    name = CLIENT_NAMES[client]
    ratios = [_ratio(p.rate, s.rate) for p, s in zip(posts, lites, strict=True)]
    _ratio_row(
        report,
        f"postgres intake: one host, POST /api/send, null worker on ({name})",
        [s.rate for s in lites],
        ratios,
        VS_SQLITE,
    )
    report.add(f"  sqlite intake in the same rounds ({name})", _rates([s.rate for s in lites]))
    _intake_cpu_rows(report, lites, posts, servers)


def _intake_cpu_rows(
    report: Report, lites: list[Measured], posts: list[Measured], servers: list[Costs]
) -> None:
    """Where the time goes: CPU per request of each process, and the rate ratio the machine's
    cores would allow were all of it spread perfectly over them."""
    lite = Costs(
        median(m.parent_cpu_us for m in lites), median(m.workers_cpu_us for m in lites), 0.0, 0.0
    )
    server = _median_or_none([c.server for c in servers])
    background = _median_or_none([c.background for c in servers])
    post = Costs(
        median(m.parent_cpu_us for m in posts),
        median(m.workers_cpu_us for m in posts),
        server,
        background,
    )
    generator = median(m.generator_cpu_us for m in [*lites, *posts])
    report.add(
        "  CPU per request, SQLite",
        f"parent {lite.parent:,.0f} us + worker {lite.workers:,.0f} us",
    )
    report.add(
        "  CPU per request, PostgreSQL",
        f"{post.text()}; generator {generator:,.0f} us",
    )
    report.figures["pg:intake_server_us"] = server or 0.0
    report.figures["pg:intake_parent_us"] = post.parent
    if server is not None:
        lite_total = lite.parent + lite.workers + generator
        post_total = post.parent + post.workers + server + (background or 0.0) + generator
        cores = os.cpu_count() or 1
        report.add(
            f"  {cores} cores shared perfectly: the ratio the CPU per request allows",
            f"{lite_total:,.0f} us vs {post_total:,.0f} us per request (all processes)",
            "",
            f"{_ratio(lite_total, post_total):.2f}x",
        )


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


# -- pg-cluster -------------------------------------------------------------------------------


@contextlib.contextmanager
def cluster(database: pg.Database, hosts: int) -> Iterator[list[Notifierd]]:
    """`hosts` daemons on one database, each with its own state dir and port."""
    with contextlib.ExitStack() as stack:
        servers = []
        for _ in range(hosts):
            path = stack.enter_context(state_dir())
            server = Notifierd(path, 1, store_env(database))
            stack.callback(server.stop)
            server.start()
            servers.append(server)
        for server in servers:
            poll(partial(server.workers_ready, 1), "the workers to be ready")
        yield servers


def delivered_by(server: Notifierd) -> int:
    """Deliveries this host made (its own counter, from /metrics)."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(DELIVERED_SAMPLE):
            return int(float(line.split()[-1]))
    return 0


@dataclass(frozen=True)
class Steady:
    accepted: int
    latencies_ms: list[float]
    by_host: list[int]
    cpu: pg.ServerCpu
    statements: list[pg.Statement]

    def percentile(self, fraction: float) -> float:
        ordered = self.latencies_ms
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def steady(
    report: Report, database: pg.Database, hosts: list[Notifierd], targets: list[str]
) -> Steady:
    """A fixed rate offered to `targets` for the steady time; every message waited for."""
    sizes = report.sizes
    since = database.last_job_id()
    before = [delivered_by(host) for host in hosts]
    count = int(sizes.steady_rate * sizes.steady_seconds)
    statements = database.statements_on()
    if statements:
        database.reset_statements()
    sampler = pg.CpuSampler(database).start()
    result = load(targets, client=report.client, count=count, rate=sizes.steady_rate)
    cpu = sampler.stop()
    report.check_statuses("postgres cluster", result)
    poll(lambda: not database.pending(), "every message to be delivered", timeout=120)
    top = database.top_statements(TOP_STATEMENTS) if statements else []
    delivered = database.delivered(since)
    if delivered != result.accepted:
        report.notes.append(f"postgres cluster: {result.accepted} 204s, {delivered} delivered")
    times = database.delivery_times(since)
    latencies = sorted((done - created) * 1000 for created, done in times)
    by_host = [delivered_by(host) - b for host, b in zip(hosts, before, strict=True)]
    return Steady(result.accepted, latencies, by_host, cpu, top)


def pg_cluster(report: Report) -> None:
    sizes = report.sizes
    idle_seconds = min(5.0, sizes.steady_seconds)
    with pg.fresh_database(store_url(report)) as database, cluster(database, HOSTS) as hosts:
        sampler = pg.CpuSampler(database).start()
        time.sleep(idle_seconds)  # a measurement window: the hosts' own traffic, no load
        idle = sampler.stop()
        urls = [send_url(host) for host in hosts]
        spread = steady(report, database, hosts, urls)
        single = steady(report, database, hosts, urls[:1])
    rate = f"{sizes.steady_rate:,.0f} msg/s"
    for label, run in (
        (
            f"postgres, {HOSTS} hosts, one database: accept->delivered at {rate}, round-robin",
            spread,
        ),
        (f"  the same, offered to one host only ({HOSTS} claiming)", single),
    ):
        p50, p99 = run.percentile(0.5), run.percentile(0.99)
        report.add(
            label,
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {run.percentile(1.0):.0f} ms;"
            f" {run.accepted:,} messages, delivered by host {'/'.join(map(str, run.by_host))}",
            f"p99 <= {P99_TARGET_MS:.0f} ms",
            verdict(p99 <= P99_TARGET_MS, P99_TARGET_MS / p99 if p99 else None),
        )
    _cluster_cpu_rows(report, idle, spread)
    _statement_rows(report, spread)


def _statement_rows(report: Report, run: Steady) -> None:
    """Where the server's time went in the round-robin run, statement by statement, when the
    server loads pg_stat_statements (wall time in the server, planning included)."""
    if not run.statements:
        report.notes.append(
            "pg_stat_statements is not in the server's shared_preload_libraries:"
            " no per-statement figures"
        )
        return
    messages = max(1, run.accepted)
    for statement in run.statements:
        total, plan = (ms * 1000 / messages for ms in (statement.total_ms, statement.plan_ms))
        report.add(
            f"    {statement.query[:70]}",
            f"{statement.calls / messages:.2f} calls, {total:,.0f} us per message"
            f" ({plan:,.0f} us planning)",
        )


def _cluster_cpu_rows(report: Report, idle: pg.ServerCpu, spread: Steady) -> None:
    if idle.backends is None or spread.cpu.backends is None:
        report.notes.append("postgres cluster: the server is not on this machine: no CPU figures")
        return
    idle_per_host = idle.backends * 1e6 / idle.seconds / HOSTS
    report.figures["pg:idle_host_us_per_s"] = idle_per_host
    report.add(
        f"  database server CPU with {HOSTS} hosts idle",
        f"{idle_per_host / 1000:,.1f} ms per second per host"
        f" (+ {(idle.background or 0) * 1e3 / idle.seconds:,.1f} ms/s background writers)",
    )
    # What the messages cost beyond what the hosts cost idle in the same window.
    busy = spread.cpu.backends - idle_per_host * HOSTS * spread.cpu.seconds / 1e6
    per_message = busy * 1e6 / max(1, spread.accepted)
    report.figures["pg:steady_us"] = per_message
    background = (spread.cpu.background or 0.0) * 1e6 / max(1, spread.accepted)
    report.add(
        f"  database server CPU per message at {report.sizes.steady_rate:,.0f} msg/s, round-robin",
        f"{per_message:,.0f} us (+ {background:,.0f} us background writers; idle cost apart)",
    )


# -- pg-costs ---------------------------------------------------------------------------------


def pg_costs(report: Report) -> None:
    """Intake alone (the channel stopped: every message committed, none claimed), then the
    claims and outcomes alone (the channel started: the backlog delivered, nothing coming in),
    on one host."""
    client = report.client
    with (
        pg.fresh_database(store_url(report)) as database,
        state_dir() as path,
        daemon(path, env=store_env(database)) as (server, _),
    ):
        rate, intake = _intake_alone(report, server, database)
        backlog = database.count_jobs()
        took, delivery = _delivery_alone(server, database, backlog)
        delivered = database.delivered()
    if delivered != backlog:
        report.notes.append(f"postgres costs: {backlog} jobs, {delivered} delivered")
    report.add(
        f"postgres, one host: intake alone, the channel stopped ({CLIENT_NAMES[client]})",
        f"{rate:,.0f} req/s; per message {intake.text()}",
    )
    report.add(
        f"  claim + outcome alone: a backlog of {backlog:,} delivered",
        f"{backlog / took:,.0f} deliveries/s; per message {delivery.text()}",
    )
    if intake.server is not None and delivery.server is not None:
        report.figures["pg:message_us"] = intake.server + delivery.server
        report.figures["pg:message_bgw_us"] = (intake.background or 0) + (delivery.background or 0)


def _intake_alone(report: Report, server: Notifierd, database: pg.Database) -> tuple[float, Costs]:
    """Requests per second and CPU per message with the channel stopped."""
    sizes = report.sizes
    server.control("stop", CHANNEL)
    poll(lambda: not server.worker_pids(), "the stopped channel's workers to end")
    load(send_url(server), client=report.client, duration=sizes.warmup)
    meter = CpuMeter([server.pid])
    sampler = pg.CpuSampler(database).start()
    result = load(send_url(server), client=report.client, duration=sizes.duration)
    cpu = sampler.stop()
    report.check_statuses("postgres costs", result)
    (parent,) = meter.per_request(result.accepted)
    return result.rate, Costs(parent, 0.0, *cpu.per_message_us(result.accepted))


def _delivery_alone(server: Notifierd, database: pg.Database, backlog: int) -> tuple[float, Costs]:
    """Seconds to deliver the backlog once the channel starts, and CPU per delivery (the
    parent's, and the server's; the worker's start-up is not counted)."""
    meter = CpuMeter([server.pid])
    sampler = pg.CpuSampler(database).start()
    began = time.perf_counter()
    server.control("start", CHANNEL)
    poll(lambda: not database.pending(), "the backlog to be delivered", timeout=600)
    took = time.perf_counter() - began
    cpu = sampler.stop()
    (parent,) = meter.per_request(backlog)
    return took, Costs(parent, 0.0, *cpu.per_message_us(backlog))


SCENARIOS: dict[str, Callable[[Report], None]] = {
    "pg-intake": pg_intake,
    "pg-cluster": pg_cluster,
    "pg-costs": pg_costs,
}
