"""Optional bearer tokens for the API: `Authorization: Bearer <token>`, compared in constant
time against every configured token."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

#: Route names that need a token when tokens are configured; ping and metrics are optional.
PROTECTED = frozenset({"send", "jobs"})


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
