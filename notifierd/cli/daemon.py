"""`notifierd`: run the daemon, or only check its configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any

import structlog

from notifierd import __version__
from notifierd.cli.checks import warn_about_settings
from notifierd.cli.options import add_setting_flags, settings_from
from notifierd.config import load_channels
from notifierd.control.server import SocketUnavailable
from notifierd.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_STORE,
    ConfigError,
    StateDirInUse,
    StoreError,
    StoreUnusable,
)
from notifierd.logs import configure_parent_logging
from notifierd.store.sqlite.schema import SCHEMA_VERSION

PRIVATE_UMASK = 0o077


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifierd",
        description="Notification daemon: accepts messages over HTTP, stores them durably and "
        "delivers them through worker processes.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"notifierd {__version__} (database schema version {SCHEMA_VERSION})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the daemon (the default)")
    add_setting_flags(run)
    check = commands.add_parser("check-config", help="check the channel file and exit")
    add_setting_flags(check, ("config",))
    add_setting_flags(parser)
    return parser


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run the daemon on uvloop (a dependency, but for Windows, where it does not exist): it
    takes less of the parent's CPU per request than asyncio's own loop (docs/performance.md)."""
    try:
        import uvloop  # noqa: PLC0415 - absent on Windows
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def keep_files_private() -> None:
    """Whatever the umask, what the daemon and its workers create is theirs alone: the state
    dir 0700, the database (and SQLite's WAL and SHM, which copy its mode) and the log file
    0600. They hold messages and remotes' answers."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        channels = load_channels(settings.config, settings.default_ttl)
        if args.command == "check-config":
            print(f"{settings.config}: {len(channels)} channel(s) OK: {', '.join(channels)}")
            return 0
        settings = settings.with_tokens_file()
        keep_files_private()
        log_files = configure_parent_logging(
            settings.log_level,
            settings.log_format,
            settings.log_file,
            verbose=settings.verbose,
            max_bytes=settings.log_file_max_bytes,
            backups=settings.log_file_backups,
        )
    except ConfigError as exc:
        print(f"notifierd: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    warn_about_settings(settings)
    from notifierd.daemon import Daemon  # noqa: PLC0415 - keep check-config light

    try:
        return run_loop(Daemon(settings, channels, log_files).run())
    except SocketUnavailable as exc:
        structlog.get_logger("notifierd").critical("notifierd.socket_unavailable", error=str(exc))
        return EXIT_CONFIG
    except ConfigError as exc:
        structlog.get_logger("notifierd").critical("notifierd.failed", error=str(exc))
        return EXIT_CONFIG
    except StoreUnusable as exc:
        structlog.get_logger("notifierd").critical("notifierd.failed", error=str(exc))
        return EXIT_STORE
    except (StoreError, StateDirInUse, OSError) as exc:
        structlog.get_logger("notifierd").critical("notifierd.failed", error=str(exc))
        return EXIT_FAILURE
    finally:
        log_files.flush()
