"""Warnings at start-up about settings that are valid but probably not what was meant: they
would otherwise go unnoticed until they matter."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import structlog

from notifierd.api.auth import is_loopback
from notifierd.config import ENV_REFERENCE
from notifierd.settings import Settings, unknown_variables

log = structlog.get_logger("notifierd")


def warn_about_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    for name, closest in unknown_variables(environ, _referenced_by(settings)):
        log.warning(
            "settings.unknown_variable",
            variable=name,
            closest=closest,
            hint=f"did you mean {closest}?" if closest else "no setting has a similar name",
        )
    if not settings.api_tokens and not is_loopback(settings.host):
        log.warning(
            "api.open_without_tokens",
            host=settings.host,
            hint="anyone who reaches this address can send messages and read jobs: set "
            "NOTIFIERD_API_TOKENS_FILE, or listen on 127.0.0.1",
        )


def _referenced_by(settings: Settings) -> set[str]:
    """The variables the channel file reads through `${VAR}`: a `NOTIFIERD_*` one among them is
    meant for it, not a mistyped setting."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = settings.config.read_text(encoding="utf-8")
        return {name for name in ENV_REFERENCE.findall(text) if name}
    return set()
