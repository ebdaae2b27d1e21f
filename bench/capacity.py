"""The capacity model of the PostgreSQL scenarios (bench.cluster): from the per-message costs
they measured, how many hosts one PostgreSQL of N cores carries."""

from __future__ import annotations

from bench.cluster import HOSTS
from bench.scenarios import Report

#: The share of a database server's cores the model lets the hosts use.
BUSY = 0.7
CORES = (2, 4, 8, 16, 32)


def capacity(report: Report) -> None:
    """How many hosts one PostgreSQL of N cores carries, from the figures measured.

    The database's CPU per message depends on the batches: flat out (pg-intake: intake and
    delivery at once, one host) and at a light steady load (pg-cluster: the fixed rate spread
    over the hosts, a message or two per statement; what the hosts cost idle apart), with the
    full batches of pg-costs (intake alone, then a backlog delivered) as the floor. A host flat
    out sends what its parent's CPU per request allows on a core of its own (the parent is one
    process; the database and the load generator are elsewhere). Every host also costs the
    database its idle traffic (heartbeat, reaper, switch polls)."""
    figures = report.figures
    live = figures.get("pg:intake_server_us")
    if not live:
        return
    idle = figures.get("pg:idle_host_us_per_s", 0.0)
    host_rate = 1e6 / figures["pg:intake_parent_us"]
    light_rate = report.sizes.steady_rate / HOSTS
    light = figures.get("pg:steady_us")
    floor = figures.get("pg:message_us")
    report.add(
        "capacity model: database CPU per message (intake + claim + outcome)",
        f"flat out {live:,.0f} us"
        + (f"; at {light_rate:,.0f} msg/s per host {light:,.0f} us" if light else "")
        + (f"; full batches {floor:,.0f} us" if floor else "")
        + f"; {idle / 1000:,.1f} ms/s per idle host; one host flat out {host_rate:,.0f} msg/s",
    )
    for cores in CORES:
        budget = cores * BUSY * 1e6
        text = (
            f"{budget / live:,.0f} msg/s flat out: {budget / (host_rate * live + idle):,.1f} hosts"
        )
        if light:
            hosts = budget / (light_rate * light + idle)
            text += f"; {hosts:,.0f} hosts at {light_rate:,.0f} msg/s each"
        report.add(f"  one PostgreSQL of {cores} cores, {BUSY:.0%} busy", text)
