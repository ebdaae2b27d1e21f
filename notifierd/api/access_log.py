"""The HTTP access log: one structured line per request. The query string's values are masked
(a message may be sent in the query, and a log is read by more people than the messages are
meant for); its names are kept. Long targets are cut short so a client cannot flood the log."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from notifierd.log_output import HotLine

MAX_TARGET = 200
MASK = "***"

access_line = HotLine("aiohttp.access", "http.request")


class AccessLogger(AbstractAccessLogger):
    """Passed to aiohttp's runner as `access_log_class`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = masked_target(request.raw_path)
        if len(target) > MAX_TARGET:
            target = f"{target[:MAX_TARGET]}...({len(target)} chars)"
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


def masked_target(raw_path: str) -> str:
    """`/api/send/x?message=secret&delay=5` -> `/api/send/x?message=***&delay=***`."""
    path, question, query = raw_path.partition("?")
    if not question:
        return raw_path
    parts = (part.partition("=") for part in query.split("&"))
    return f"{path}?" + "&".join(f"{name}={MASK}" if equals else name for name, equals, _ in parts)
