"""The load generators: N keep-alive HTTP/1.1 connections, each sending one request at a time.

- `aiohttp`: aiohttp's client, in this process (the one the issue names, with wrk).
- `wrk`: wrk from the distribution's packages (`apt install wrk`), driven by `run_wrk`, one
  thread; for a fixed duration only (no request count, no fixed rate).
- `raw`: just enough HTTP/1.1 over an asyncio protocol (a request is a constant byte string, a
  response is a status line, headers and a Content-Length body): a third of the aiohttp
  client's CPU per request, so the server under test gets more of a 2-core machine.

Three ways to stop: after `duration` seconds, after `count` requests, or at a fixed `rate`
(requests per second, open loop: requests leave on schedule whether or not earlier ones have
been answered) for `count` requests. Every status is counted; a response that is not 204 is
reported, never ignored. Run it as `python -m bench.load URL ...`; it prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BODY = "message=bench+message+%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82%2C+world%21"


@dataclass
class LoadResult:
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0
    #: Wall-clock time at which the first request left.
    started_at: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    #: CPU seconds the load generator's own process spent (set by whoever ran it as a child).
    generator_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def accepted(self) -> int:
        """Answers that were 204 (wrk tells only 2xx, and the API's only 2xx is 204)."""
        return self.statuses.get("204", 0) + self.statuses.get("2xx", 0)

    @property
    def non_204(self) -> int:
        return self.requests - self.accepted + self.errors


@dataclass
class _Plan:
    duration: float | None
    count: int | None
    rate: float | None
    issued: int = 0
    start: float = 0.0

    def ticket(self) -> float | None:
        """When the next request may leave (monotonic), or None when the run is over."""
        if self.count is not None and self.issued >= self.count:
            return None
        now = time.perf_counter()
        if self.duration is not None and now - self.start >= self.duration:
            return None
        self.issued += 1
        if self.rate is None:
            return now
        return self.start + (self.issued - 1) / self.rate


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` sends a request and returns the status."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self._buffer) < end + 4 + length:
            return
        del self._buffer[: end + 4 + length]
        waiter, self._waiter = self._waiter, None
        if not waiter.done():
            waiter.set_result(int(head[0].split(" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the server closed the connection"))
        if not self._closed.done():
            self._closed.set_result(None)

    async def exchange(self, request: bytes) -> int:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def build_request(url: str, body: str) -> bytes:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    data = body.encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _raw_worker(url: str, request: bytes, plan: _Plan, stats: _Stats) -> None:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    connection: _Connection | None = None
    while (leave_at := plan.ticket()) is not None:
        delay = leave_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if connection is None:
            _, connection = await loop.create_connection(
                _Connection, parts.hostname or "127.0.0.1", parts.port or 80
            )
        started = time.perf_counter()
        try:
            status = await connection.exchange(request)
        except ConnectionError:
            stats.errors += 1
            connection.close()
            connection = None
            continue
        stats.record(status, started)
    if connection is not None:
        connection.close()


async def _aiohttp_worker(url: str, body: str, plan: _Plan, stats: _Stats, session: object) -> None:
    import aiohttp  # noqa: PLC0415 - only for --client aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while (leave_at := plan.ticket()) is not None:
        delay = leave_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                stats.record(response.status, started)
        except aiohttp.ClientError:
            stats.errors += 1


@dataclass
class _Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def record(self, status: int, started: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(time.perf_counter() - started)


async def run_load(
    url: str | Sequence[str],
    connections: int,
    *,
    duration: float | None = None,
    count: int | None = None,
    rate: float | None = None,
    body: str = BODY,
    client: str = "raw",
) -> LoadResult:
    """Drive `url` with `connections` concurrent keep-alive connections (see the module doc).
    Several URLs (the hosts of a cluster, behind no load balancer) share the connections in
    turn: connection i sends to URL i modulo their number."""
    urls = [url] if isinstance(url, str) else list(url)
    if duration is None and count is None:
        raise ValueError("give a duration or a count")
    plan = _Plan(duration, count, rate)
    stats = _Stats()
    started_at = time.time()
    plan.start = time.perf_counter()
    if client == "aiohttp":
        import aiohttp  # noqa: PLC0415

        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(
                *(
                    _aiohttp_worker(urls[i % len(urls)], body, plan, stats, session)
                    for i in range(connections)
                )
            )
    else:
        requests = [build_request(u, body) for u in urls]
        await asyncio.gather(
            *(
                _raw_worker(urls[i % len(urls)], requests[i % len(urls)], plan, stats)
                for i in range(connections)
            )
        )
    seconds = time.perf_counter() - plan.start
    latencies = sorted(stats.latencies)
    return LoadResult(
        requests=sum(stats.statuses.values()),
        statuses={str(status): n for status, n in sorted(stats.statuses.items())},
        errors=stats.errors,
        seconds=seconds,
        started_at=started_at,
        latency_p50_ms=_percentile(latencies, 0.50) * 1000,
        latency_p99_ms=_percentile(latencies, 0.99) * 1000,
    )


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
"""


def wrk_installed() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, connections: int, duration: float, body: str = BODY) -> LoadResult:
    """Drive `url` with wrk for `duration` seconds. wrk counts responses other than 2xx/3xx
    and socket errors; those are reported like the other clients' non-204s."""
    with tempfile.TemporaryDirectory(prefix="notifierd-wrk-") as folder:
        script = Path(folder) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=body), encoding="utf-8")
        seconds = f"{max(1, round(duration))}s"
        started_at = time.time()
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}", "--latency", "-s", script, url],
            capture_output=True,
            text=True,
            check=False,
            timeout=duration + 60,
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, started_at)


def parse_wrk(output: str, started_at: float = 0.0) -> LoadResult:
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", output)
    if found is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    requests = int(found.group(1))
    seconds = float(found.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(failed.group(1)) if failed else 0
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    statuses = {"2xx": requests - non_2xx} if requests > non_2xx else {}
    if non_2xx:
        statuses["other"] = non_2xx
    return LoadResult(
        requests=requests,
        statuses=statuses,
        errors=errors,
        seconds=seconds,
        started_at=started_at,
        latency_p50_ms=_wrk_latency(output, "50%"),
        latency_p99_ms=_wrk_latency(output, "99%"),
    )


def _wrk_latency(output: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if found is None:
        return 0.0
    return float(found.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[found.group(2)]


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("url", nargs="+", help="one or more (connections are shared in turn)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--count", type=int)
    parser.add_argument("--rate", type=float, help="requests per second (open loop)")
    parser.add_argument("--body", default=BODY)
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run_load(
            args.url,
            args.connections,
            duration=args.duration,
            count=args.count,
            rate=args.rate,
            body=args.body,
            client=args.client,
        )
    )
    json.dump(asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
