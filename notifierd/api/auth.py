"""Optional bearer tokens for the API: `Authorization: Bearer <token>`, compared in constant
time against every configured token."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

#: Route names that need a token when tokens are configured; ping and metrics are optional.
PROTECTED = frozenset({"send", "hook_alertmanager", "hook_grafana", "jobs"})


def protected_routes(auth_ping: bool, auth_metrics: bool) -> frozenset[str]:
    # /api/health goes with ping: both are probes, and whatever may call one (a load balancer,
    # an orchestrator's liveness check) may call the other.
    optional = (("ping", auth_ping), ("health", auth_ping), ("metrics", auth_metrics))
    return PROTECTED | {name for name, on in optional if on}


def auth_summary(tokens: tuple[str, ...], protected: frozenset[str]) -> str:
    """For the start-up line: whether the API asks for a token, and on which routes."""
    if not tokens:
        return "none: no API token is set, every route is open"
    # The webhook routes (`hook_alertmanager`, `hook_grafana`) are one thing to a reader.
    names = {"hooks" if name.startswith("hook_") else name for name in protected}
    return f"bearer token required for {', '.join(sorted(names))}"


def is_loopback(host: str) -> bool:
    """True if only this machine can reach `host`. A name other than localhost may resolve to
    anything, so it counts as reachable from elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(offered: str, tokens: tuple[str, ...]) -> bool:
    """True if `offered` is one of `tokens`. Every token is compared, whatever matches first,
    so the time taken says nothing about which one (or how much of one) matched."""
    offered_bytes = offered.encode("utf-8")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(offered_bytes, token.encode("utf-8"))
    return matched


def bearer_auth(tokens: tuple[str, ...], protected: frozenset[str]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name
        if route in protected:
            scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token_matches(offered.strip(), tokens):
                return web.json_response(
                    {
                        "code": "unauthorized",
                        "description": "a valid 'Authorization: Bearer <token>' header is required",
                    },
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="notifierd"'},
                )
        return await handler(request)

    return middleware
