"""Daemon settings: every one has a default, a `NOTIFIERD_*` environment variable and a flag
(see `cli.daemon`). Flags win over the environment, the environment over the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "console", "json"]


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
    log_level: LogLevel = "info"
    log_format: LogFormat = Field("auto", description="console on a terminal, else JSON")
    log_file: Path | None = Field(None, description="also write the log to this file")
    access_log: bool = Field(True, description="log every HTTP request")
    max_body_size: int = Field(1024 * 1024, gt=0, description="largest request body, bytes")
    max_delay: int = Field(30 * 86400, ge=0, description="largest accepted `delay`, seconds")
    default_ttl: int = Field(86400, gt=0, description="time-to-live of a delivery, seconds")
    shutdown_timeout: float = Field(
        10.0, ge=0, description="how long workers may finish what they hold on stop, seconds"
    )

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else self.state_dir / "notifierd.sock"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "notifierd.db"
