"""Daemon settings: every one has a default, a `NOTIFIERD_*` environment variable and a flag
(see `cli.daemon`). Flags win over the environment, the environment over the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "console", "json"]
MIN_TOKEN_LENGTH = 16


class Settings(BaseSettings):
    """The daemon's settings. Paths relative to the working directory are allowed."""

    model_config = SettingsConfigDict(env_prefix="NOTIFIERD_", extra="forbid", frozen=True)

    config: Path = Field(Path("etc/channels.yaml"), description="the channel file (YAML)")
    host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the HTTP API")
    socket: Path | None = Field(
        None, description="control socket for notifierctl (default: STATE_DIR/notifierd.sock)"
    )
    state_dir: Path = Field(Path("state"), description="where the database lives")
    log_level: LogLevel = Field("info", description="the level of notifierd's own log")
    verbose: int = Field(
        0, ge=0, le=2, description="-v: debug; -vv: debug for the libraries too (aiohttp, ...)"
    )
    log_format: LogFormat = Field("auto", description="console on a terminal, else JSON")
    log_file: Path | None = Field(None, description="also write the log to this file")
    log_file_max_bytes: int = Field(
        10 * 1024 * 1024, ge=0, description="rotate the log file at this size (0: never)"
    )
    log_file_backups: int = Field(5, ge=0, description="rotated log files to keep")
    access_log: bool = Field(True, description="log every HTTP request")
    journal_retention: float = Field(
        7 * 86400.0,
        gt=0,
        description="seconds finished deliveries stay in the journal before they are pruned",
    )
    api_tokens: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="if set, /api/send and /api/jobs require one of these bearer tokens"
    )
    auth_ping: bool = Field(False, description="require a token for /api/ping too")
    auth_metrics: bool = Field(False, description="require a token for /metrics too")
    max_body_size: int = Field(1024 * 1024, gt=0, description="largest request body, bytes")
    max_delay: int = Field(30 * 86400, ge=0, description="largest accepted `delay`, seconds")
    default_ttl: int = Field(86400, gt=0, description="time-to-live of a delivery, seconds")
    shutdown_timeout: float = Field(
        10.0, ge=0, description="how long workers may finish what they hold on stop, seconds"
    )

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
        return self.socket if self.socket is not None else self.state_dir / "notifierd.sock"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "notifierd.db"
