"""Settings from flags, the environment and the defaults (flags win)."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from notifierd.errors import ConfigError
from notifierd.settings import Settings

# flag -> setting name; each flag maps onto the setting of the same meaning.
FLAGS = {
    "--config": "config",
    "--host": "host",
    "--port": "port",
    "--socket": "socket",
    "--state-dir": "state_dir",
    "--log-level": "log_level",
    "--log-format": "log_format",
    "--log-file": "log_file",
    "--shutdown-timeout": "shutdown_timeout",
}


def add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] = ()) -> None:
    """Add the flags of the named settings (all when `names` is empty)."""
    for flag, name in FLAGS.items():
        if names and name not in names:
            continue
        field = Settings.model_fields[name]
        env = f"NOTIFIERD_{name.upper()}"
        default = field.default
        parser.add_argument(
            flag,
            dest=name,
            # SUPPRESS: a flag not given sets nothing, so it neither hides the environment nor
            # a flag given before the subcommand.
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=f"{field.description or name.replace('_', ' ')} (env {env}; default: {default})",
        )
    if not names or "log_level" in names:
        parser.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=argparse.SUPPRESS,
            help="-v: debug logging",
        )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the flags given on the command line on top of the environment."""
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in FLAGS.values()
        if getattr(args, name, None) is not None
    }
    if getattr(args, "verbose", 0):
        overrides["log_level"] = "debug"
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"])
            problems.append(
                f"setting {name} (--{name.replace('_', '-')} or "
                f"NOTIFIERD_{name.upper()}): {error['msg']}"
            )
        raise ConfigError("\n".join(problems)) from None
