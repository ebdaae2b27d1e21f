"""The Store a URL names (`settings.store_url`, `--store-url`, `NOTIFIERD_STORE_URL`):

- `sqlite:///ABSOLUTE/PATH` (percent-encoded): the embedded default, one database file;
  `default_store_url(state_dir)` is `STATE_DIR/notifierd.db`'s.
- `postgresql://USER:PASSWORD@HOST:PORT/DATABASE` (or `postgres://`): several hosts sharing one
  queue (DESIGN §9). Its driver is the optional extra `postgresql`: without it, opening such a
  URL says `pip install 'notifierd[postgresql]'`.

A backend's module is imported only when its URL is opened, so that the port and the other
backends load without it. To add one: its scheme in `_SCHEMES`, and a function that makes its
Store in `_OPENERS` (see `_open_sqlite`).

An error never shows a URL's password: `url_without_password` is applied to every URL quoted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from notifierd.errors import ConfigError
from notifierd.store.base import DEFAULT_DEAD_AFTER, Store

DATABASE_NAME = "notifierd.db"
_SQLITE = "sqlite"
_POSTGRESQL = "postgresql"
#: Each scheme a URL may have, and the backend it names.
_SCHEMES = {"sqlite": _SQLITE, "postgresql": _POSTGRESQL, "postgres": _POSTGRESQL}
_EXAMPLES = "sqlite:///ABSOLUTE/PATH/notifierd.db or postgresql://USER@HOST/DATABASE"
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)[^&#]*")


class StoreUrlError(ConfigError):
    """A store URL that names no usable Store. The message quotes the URL without its
    password."""


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A checked store URL."""

    #: The backend: "sqlite" or "postgresql".
    backend: str
    #: The URL as given.
    url: str
    #: The database file of a SQLite URL; None for other backends.
    path: Path | None = None

    @property
    def shown(self) -> str:
        """The URL as logs and errors show it: without its password."""
        return url_without_password(self.url)


def default_store_url(state_dir: Path) -> str:
    """The SQLite database in the state dir (an absolute path: `Settings` makes it one)."""
    return _SQLITE + "://" + quote(str(state_dir / DATABASE_NAME))


def parse_store_url(url: str) -> StoreUrl:
    """Check `url`'s form. Raises `StoreUrlError` saying what is wrong and what would do."""
    scheme, separator, _ = url.partition(":")
    backend = _SCHEMES.get(scheme.lower()) if separator else None
    if backend is None:
        shown = url_without_password(url)
        if not separator or url.startswith("/"):
            hint = (
                f" (a SQLite database file is sqlite://{quote(url)})" if url.startswith("/") else ""
            )
            raise StoreUrlError(f"the store URL {shown!r} is not a URL{hint}: use {_EXAMPLES}")
        raise StoreUrlError(
            f"the store URL {shown!r} names an unknown kind of store {scheme!r}: use {_EXAMPLES}"
        )
    if backend == _SQLITE:
        return StoreUrl(backend, url, _sqlite_path(url))
    return StoreUrl(backend, url)


def check_store_url(url: str) -> StoreUrl:
    """`parse_store_url`, and that this build has the backend it names."""
    parsed = parse_store_url(url)
    if _OPENERS.get(parsed.backend) is None:
        raise StoreUrlError(
            f"the store URL {parsed.shown!r} names a PostgreSQL store, which this notifierd"
            " cannot use yet: use sqlite:///ABSOLUTE/PATH/notifierd.db"
        )
    return parsed


def open_store(
    url: str, *, owner: str | None = None, dead_after: float = DEFAULT_DEAD_AFTER
) -> Store:
    """The Store `url` names, its leases recorded under `owner` (default: a new node id).
    A host sharing it that has not heart-beaten for `dead_after` seconds is declared dead
    (ignored by a backend only one host uses). Not connected yet: `async with
    open_store(url) as store:` opens it and closes it after (or call `open()` and `close()`).
    Raises `StoreUrlError` for a URL it cannot use."""
    parsed = check_store_url(url)
    opener = _OPENERS[parsed.backend]
    assert opener is not None  # check_store_url refused the others
    return opener(parsed, owner, dead_after)


def url_without_password(url: str) -> str:
    """`url` with its password (in the authority, or a `password=` parameter) as `***`.
    Made for malformed URLs too: everything up to the last `@` is taken as the user part, so
    a password with an unescaped `/`, `@` or `?` is hidden all the same."""
    scheme, separator, rest = url.partition("://")
    if separator:
        userinfo, at, after = rest.rpartition("@")
        if at and ":" in userinfo:
            rest = f"{userinfo.partition(':')[0]}:***@{after}"
    return scheme + separator + _PASSWORD_PARAMETER.sub(r"\1***", rest)


def _sqlite_path(url: str) -> Path:
    split = urlsplit(url)
    shown = url_without_password(url)
    if split.netloc:
        raise StoreUrlError(
            f"the store URL {shown!r} names a host; a SQLite URL names an absolute path, after"
            " three slashes: sqlite:///var/lib/notifierd/notifierd.db"
        )
    if split.query or split.fragment:
        raise StoreUrlError(
            f"the store URL {shown!r} has a query or fragment; a SQLite URL has none"
        )
    path = unquote(split.path)
    if not path.startswith("/"):
        raise StoreUrlError(
            f"the store URL {shown!r} needs an absolute path, after three slashes:"
            " sqlite:///var/lib/notifierd/notifierd.db"
        )
    if path.endswith("/") or "\0" in path:
        raise StoreUrlError(f"the store URL {shown!r} does not name a database file")
    # sqlite:////path (SQLAlchemy's spelling of an absolute path) is the same file.
    return Path("/" + path.lstrip("/"))


def _open_sqlite(url: StoreUrl, owner: str | None, _dead_after: float) -> Store:
    from notifierd.store.sqlite.store import SqliteStore  # noqa: PLC0415 - only when used

    assert url.path is not None
    return SqliteStore(url.path, owner=owner)


def _open_postgresql(url: StoreUrl, owner: str | None, dead_after: float) -> Store:
    from notifierd.store.postgres import DriverMissing, postgres_store  # noqa: PLC0415

    try:
        return postgres_store(url.url, owner=owner, dead_after=dead_after)
    except DriverMissing as exc:
        raise StoreUrlError(f"the store URL {url.shown!r}: {exc}") from None


#: What makes each backend's Store; None: reserved, not in this build yet.
_OPENERS: dict[str, Callable[[StoreUrl, str | None, float], Store] | None] = {
    _SQLITE: _open_sqlite,
    _POSTGRESQL: _open_postgresql,
}
