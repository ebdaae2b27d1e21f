"""The baseline: a bare aiohttp app with notifierd's send route. It parses the form and
answers 204, doing nothing else. Run as `python -m bench.baseline_app --port 0`; it prints
`{"port": N}` on stdout once it listens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from aiohttp import web


async def send(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(status=204)


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/send/{channel}", send)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(build_app(), handle_signals=True)
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
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop  # noqa: PLC0415 - optional

            uvloop.run(serve(args.host, args.port))
        else:
            asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
