"""The baselines: a bare aiohttp app with notifierd's send route. It parses the form and
answers 204, doing nothing else. Run as `python -m bench.baseline_app --port 0`; it prints
`{"port": N}` on stdout once it listens.

With `--durable DATABASE` it also stores each message before answering, in the least work a
durable answer takes: one SQLite row per message, WAL, synchronous=FULL, and every message
waiting at a moment committed together (group commit: the statements on the loop's thread, the
COMMIT and its fsync on another). No job id, no deliveries, no checks, no log, no workers. It
is the floor under any intake that answers 204 only once the message is on disk: what is
left between it and notifierd is notifierd's own work, what lies between it and the bare app
is the price of durability itself."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

Waiting = tuple[tuple[str, str], "asyncio.Future[None]"]  # a row and the future of its 204


class GroupCommit:
    """Rows added while a COMMIT runs wait for the next one, and share it."""

    def __init__(self, database: Path) -> None:
        self._conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, channel TEXT NOT NULL,"
            " message TEXT NOT NULL)"
        )
        self._committer = ThreadPoolExecutor(1)
        self._waiting: list[Waiting] = []
        self._busy = False

    async def add(self, channel: str, message: str) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append(((channel, message), future))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._begin)  # let the whole turn of the loop join
        await future

    def _begin(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            self._busy = False
            return
        loop = asyncio.get_running_loop()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO messages (channel, message) VALUES (?, ?)", [row for row, _ in batch]
            )
        except sqlite3.Error as exc:  # answered with a 500 rather than left waiting
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            failed: asyncio.Future[Any] = loop.create_future()
            failed.set_exception(exc)
            self._committed(failed, batch)
            return
        commit = loop.run_in_executor(self._committer, self._conn.execute, "COMMIT")
        commit.add_done_callback(lambda done: self._committed(done, batch))

    def _committed(self, commit: asyncio.Future[Any], batch: list[Waiting]) -> None:
        error = commit.exception()
        for _, future in batch:
            if future.done():
                continue  # its client went away, and aiohttp cancelled the handler
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self._begin()


STORE = web.AppKey("store", GroupCommit)


async def send(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(status=204)


async def send_durably(request: web.Request) -> web.Response:
    form = await request.post()
    message = form.get("message", "")
    await request.app[STORE].add(request.match_info["channel"], str(message))
    return web.Response(status=204)


def build_app(database: Path | None = None) -> web.Application:
    app = web.Application()
    if database is None:
        app.router.add_post("/api/send/{channel}", send)
    else:
        app[STORE] = GroupCommit(database)
        app.router.add_post("/api/send/{channel}", send_durably)
    return app


async def serve(host: str, port: int, database: Path | None) -> None:
    runner = web.AppRunner(build_app(database), handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = next(a for a in runner.addresses if isinstance(a, tuple))
    print(json.dumps({"port": bound[1]}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as notifierd does")
    parser.add_argument(
        "--durable", type=Path, metavar="DATABASE", help="store each message before the 204"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop  # noqa: PLC0415 - optional

            uvloop.run(serve(args.host, args.port, args.durable))
        else:
            asyncio.run(serve(args.host, args.port, args.durable))
    return 0


if __name__ == "__main__":
    sys.exit(main())
