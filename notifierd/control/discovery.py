"""How notifierctl finds the daemon's control socket: by the same settings the daemon chose it
by (`--socket`, `NOTIFIERD_SOCKET`, `--state-dir`, `NOTIFIERD_STATE_DIR`, the defaults of
`notifierd.paths`), and, when no setting names it, also at the system service's place, so an
operator in the service's group needs no flag."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from notifierd import paths
from notifierd.control.client import NotRunning
from notifierd.paths import SYSTEM_SOCKET
from notifierd.settings import Settings, unknown_variables


class Candidate(NamedTuple):
    path: Path
    origin: str  # which setting or default names it, for the message when none is found


def socket_candidates(settings: Settings) -> list[Candidate]:
    if settings.socket is not None:
        return [Candidate(settings.socket, "--socket or NOTIFIERD_SOCKET")]
    if "state_dir" in settings.model_fields_set:
        return [Candidate(settings.socket_path, "inside --state-dir or NOTIFIERD_STATE_DIR")]
    whose = "root" if paths.is_root() else "this user"
    candidates = [Candidate(settings.socket_path, f"the default for {whose}")]
    if settings.socket_path != SYSTEM_SOCKET:
        candidates.append(Candidate(SYSTEM_SOCKET, "the system service's"))
    return candidates


def locate(candidates: Sequence[Candidate]) -> Path:
    """The first candidate where a socket file exists, else the first: the client's error
    then says nothing answers there (see `not_running_message`)."""
    return next((c.path for c in candidates if c.path.exists()), candidates[0].path)


def not_running_message(
    error: NotRunning, candidates: Sequence[Candidate], environ: Mapping[str, str] | None = None
) -> str:
    """The client's error when one socket file was there; else every place looked at, and how
    to point notifierctl elsewhere."""
    if any(c.path.exists() for c in candidates):
        return str(error)
    lines = ["notifierd is not running, or not where notifierctl looked: no socket at"]
    lines += [f"  {c.path} ({c.origin})" for c in candidates]
    lines.append(
        "Point notifierctl at it with --socket PATH or NOTIFIERD_SOCKET=PATH, or with "
        "--state-dir DIR or NOTIFIERD_STATE_DIR=DIR (the socket DIR/notifierd.sock)."
    )
    environ = os.environ if environ is None else environ
    for name, closest in unknown_variables(environ):
        if closest is not None:
            lines.append(f"{name} is set but is no setting: did you mean {closest}?")
    return "\n".join(lines)
