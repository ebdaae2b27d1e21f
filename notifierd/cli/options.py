"""Settings from flags, the environment and the defaults (flags win).

Every setting has a flag of the same name (`state_dir` -> `--state-dir`); `-v` counts."""

from __future__ import annotations

import argparse
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from notifierd.errors import ConfigError
from notifierd.settings import Settings

SHORT_FLAGS = {"verbose": "-v"}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] = ()) -> None:
    """Add the flags of the named settings (all when `names` is empty)."""
    for name, field in Settings.model_fields.items():
        if names and name not in names:
            continue
        env = f"NOTIFIERD_{name.upper()}"
        value = field.get_default(call_default_factory=True)
        default = "none" if value in (None, ()) else value
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
        one_of = f"one of: {', '.join(map(str, choices))}; " if choices else ""
        described = (
            f"{field.description or name.replace('_', ' ')} ({one_of}env {env}; default: {default})"
        )
        # SUPPRESS: a flag not given sets nothing, so it neither hides the environment nor a
        # flag given before the subcommand.
        if name in SHORT_FLAGS:
            parser.add_argument(
                SHORT_FLAGS[name],
                flag(name),
                dest=name,
                action="count",
                default=argparse.SUPPRESS,
                help=described,
            )
        elif field.annotation is bool:
            parser.add_argument(
                flag(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=described,
            )
        else:
            parser.add_argument(
                flag(name),
                dest=name,
                default=argparse.SUPPRESS,
                metavar=name.upper(),
                help=described,
            )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings with the flags given on the command line on top of the environment."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"])
            problems.append(
                f"setting {name} ({flag(name)} or NOTIFIERD_{name.upper()}): {error['msg']}"
            )
        raise ConfigError("\n".join(problems)) from None
