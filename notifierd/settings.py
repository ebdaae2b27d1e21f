"""Daemon settings: every one has a default, a `NOTIFIERD_*` environment variable and a flag
(see `cli.daemon`). Flags win over the environment, the environment over the defaults."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from notifierd.errors import ConfigError
from notifierd.paths import default_config, default_state_dir, socket_for
from notifierd.store.base import DEFAULT_DEAD_AFTER
from notifierd.store.factory import (
    DATABASE_NAME,
    StoreUrlError,
    check_store_url,
    default_store_url,
)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "console", "json"]
MIN_TOKEN_LENGTH = 16


class Settings(BaseSettings):
    """The daemon's settings. A relative path is taken from the working directory at start-up
    and kept absolute; the defaults never depend on it (see `notifierd.paths`)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFIERD_", extra="forbid", frozen=True)

    config: Path = Field(default_factory=default_config, description="the channel file (YAML)")
    host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the HTTP API")
    socket: Path | None = Field(
        None,
        description="control socket for notifierctl (default: STATE_DIR/notifierd.sock; "
        "/run/notifierd/notifierd.sock for root's /var/lib/notifierd)",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir, description="where the database and the socket live"
    )
    store_url: str | None = Field(
        None,
        description="where the Store keeps the queue: sqlite:///ABSOLUTE/PATH or "
        "postgresql://USER@HOST/DATABASE; none: STATE_DIR/notifierd.db",
    )
    dead_after: float = Field(
        DEFAULT_DEAD_AFTER,
        ge=1.0,
        le=3600.0,
        description="seconds without a heartbeat after which a host sharing a PostgreSQL "
        "store is declared dead and its deliveries handed to the others (1 to 3600)",
    )
    log_level: LogLevel = Field("info", description="the level of notifierd's own log")
    verbose: int = Field(
        0, ge=0, le=2, description="-v: debug; -vv: debug for the libraries too (aiohttp, ...)"
    )
    log_format: LogFormat = Field("auto", description="console on a terminal, else JSON")
    log_file: Path | None = Field(None, description="also write the log to this file")
    log_file_max_bytes: int = Field(
        0, ge=0, description="rotate the log file at this size (0: never; leave it to logrotate)"
    )
    log_file_backups: int = Field(5, ge=0, description="rotated log files to keep (with max bytes)")
    access_log: bool = Field(True, description="log every HTTP request")
    journal_retention: float = Field(
        7 * 86400.0,
        gt=0,
        description="seconds finished deliveries stay in the journal before they are pruned",
    )
    api_tokens: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="if set, /api/send, /api/hooks and /api/jobs require one of these tokens"
    )
    api_tokens_file: Path | None = Field(
        None, description="more API tokens, one per line (kept out of `ps`, unlike the flag)"
    )
    auth_ping: bool = Field(False, description="require a token for /api/ping too")
    auth_metrics: bool = Field(False, description="require a token for /metrics too")
    max_body_size: int = Field(1024 * 1024, gt=0, description="largest request body, bytes")
    max_delay: int = Field(30 * 86400, ge=0, description="largest accepted `delay`, seconds")
    default_ttl: int = Field(86400, gt=0, description="time-to-live of a delivery, seconds")
    shutdown_timeout: float = Field(
        10.0, ge=0, description="how long workers may finish what they hold on stop, seconds"
    )
    # How long HTTP clients may take, and how many may be connected.
    read_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request's head, and its body"
    )
    keepalive_timeout: float = Field(
        75.0, gt=0, description="seconds a connection may stay open with nothing sent"
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open HTTP connections at most (kept below the descriptor limit); beyond "
        "it the longest idle are closed first",
    )

    @field_validator("config", "state_dir", "socket", "log_file", "api_tokens_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Fixed at start-up, so that what the log shows is where the daemon looks."""
        return None if value is None else value.expanduser().absolute()

    @field_validator("store_url")
    @classmethod
    def _usable_store_url(cls, value: str | None) -> str | None:
        """Checked at start-up, so that a bad URL is a configuration error (exit 2)."""
        if value is not None:
            try:
                check_store_url(value)
            except StoreUrlError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        """Tokens come comma-separated from the environment and flags."""
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_long_enough(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(token) < MIN_TOKEN_LENGTH for token in value):
            raise ValueError(f"an API token must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    @property
    def effective_log_level(self) -> str:
        return "debug" if self.verbose else self.log_level

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else socket_for(self.state_dir)

    @property
    def database_path(self) -> Path:
        return self.state_dir / DATABASE_NAME

    @property
    def effective_store_url(self) -> str:
        """`store_url`, or the SQLite database in the state dir."""
        return self.store_url if self.store_url is not None else default_store_url(self.state_dir)

    def with_tokens_file(self) -> Settings:
        """These settings with the tokens of `api_tokens_file` added to `api_tokens`."""
        if self.api_tokens_file is None:
            return self
        tokens = read_tokens_file(self.api_tokens_file)
        return self.model_copy(update={"api_tokens": (*self.api_tokens, *tokens)})


def read_tokens_file(path: Path) -> tuple[str, ...]:
    """One token per line; blank lines and lines starting with `#` are skipped. A problem is
    reported by line number, never with the token in it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"setting api_tokens_file: cannot read {path}: {exc}") from None
    tokens = []
    for number, line in enumerate(lines, 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"setting api_tokens_file: {path}, line {number}: an API token must be at least "
                f"{MIN_TOKEN_LENGTH} characters"
            )
        tokens.append(token)
    if not tokens:
        raise ConfigError(f"setting api_tokens_file: {path} holds no token")
    return tuple(tokens)


ENV_PREFIX = "NOTIFIERD_"


def unknown_variables(
    environ: Mapping[str, str], referenced: Collection[str] = ()
) -> list[tuple[str, str | None]]:
    """`NOTIFIERD_*` variables that are no setting (a typo is silently ignored otherwise), each
    with the closest setting's variable, if any is close. Variables in `referenced` (those the
    channel file reads through `${VAR}`) are meant for it and left out."""
    known = [name.upper() for name in Settings.model_fields]
    found = []
    for name in sorted(environ):
        # Read case-insensitively, as the settings are; compared without the prefix, which
        # would make every name look close to every other.
        suffix = name.upper().removeprefix(ENV_PREFIX)
        if name.upper().startswith(ENV_PREFIX) and suffix not in known and name not in referenced:
            closest = difflib.get_close_matches(suffix, known, n=1, cutoff=0.6)
            found.append((name, ENV_PREFIX + closest[0] if closest else None))
    return found
