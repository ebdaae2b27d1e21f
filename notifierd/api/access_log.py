"""The HTTP access log: one structured line per request, with long targets cut short so a
client cannot flood the log through the query string."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from notifierd.log_output import HotLine

MAX_TARGET = 200

access_line = HotLine("aiohttp.access", "http.request")


class AccessLogger(AbstractAccessLogger):
    """Passed to aiohttp's runner as `access_log_class`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = request.raw_path
        if len(target) > MAX_TARGET:
            target = f"{target[:MAX_TARGET]}...({len(request.raw_path)} chars)"
        access_line.write(
            logging.INFO,
            {
                "remote": request.remote,
                "method": request.method,
                "target": target,
                "status": response.status,
                "bytes": response.body_length,
                "ms": round(time * 1000, 2),
            },
        )
