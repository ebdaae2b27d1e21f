"""PostgreSQL store URLs: recognised, and shown without their password."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
#: Query parameters that carry a secret (libpq's and asyncpg's names).
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


def redact_url(url: str) -> str:
    """The URL as it may be logged or shown: any password (in the user part or as a query
    parameter) replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}{':***' if colon else ''}@{hosts}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(name, "***" if name in _SECRET_PARAMETERS else value) for name, value in pairs],
                safe="*/:",
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        # Not even a URL: show nothing of it rather than a secret.
        return "<an invalid PostgreSQL URL>"
