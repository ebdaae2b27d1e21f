"""Counting HTTP responses by route pattern and status (`notifierd_http_responses_total`) where
aiohttp already calls out once per request: the access logger. It is installed whether or not
access lines are written (`access_log`), so the count never depends on the log."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from notifierd.api.access_log import AccessLogger

#: The route of a request no route matched (404, 405), or that was not parsed as HTTP at all:
#: one label for all of them, so a scan of random paths adds no series.
UNMATCHED = "unmatched"


def route_of(request: web.BaseRequest) -> str:
    """The pattern of the route that served `request` (`/api/send/{channel}`), never the path
    itself: the label's values stay as few as the routes."""
    try:
        resource = request.match_info.route.resource  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):
        # Refused before routing (400 for a malformed request): aiohttp's request has no route,
        # and its match_info asserts that it has one.
        return UNMATCHED
    return UNMATCHED if resource is None else resource.canonical


def counting_access_logger(
    counts: dict[tuple[str, int], int], write_lines: bool
) -> type[AbstractAccessLogger]:
    """The access logger class to give aiohttp: counts every response in `counts` and, with
    `write_lines`, writes the access line."""

    class CountingAccessLogger(AccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            key = (route_of(request), response.status)
            counts[key] = counts.get(key, 0) + 1
            if write_lines:
                super().log(request, response, time)

    return CountingAccessLogger
