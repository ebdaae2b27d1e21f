"""Where the channel file, the state directory and the control socket are when no setting names
them. They never depend on the working directory: the daemon and notifierctl, started from
anywhere, arrive at the same places.

- root: `/etc/notifierd/channels.yaml`, `/var/lib/notifierd`, `/run/notifierd/notifierd.sock`
  (the places of a system service);
- anyone else: `$XDG_CONFIG_HOME/notifierd/channels.yaml` (`~/.config`) and
  `$XDG_STATE_HOME/notifierd` (`~/.local/state`), the socket inside the state directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOCKET_NAME = "notifierd.sock"
SYSTEM_CONFIG = Path("/etc/notifierd/channels.yaml")
SYSTEM_STATE_DIR = Path("/var/lib/notifierd")
SYSTEM_SOCKET = Path("/run/notifierd") / SOCKET_NAME


def is_root() -> bool:
    return os.geteuid() == 0


def default_config(environ: Mapping[str, str] | None = None, root: bool | None = None) -> Path:
    if is_root() if root is None else root:
        return SYSTEM_CONFIG
    return _xdg_home("XDG_CONFIG_HOME", ".config", environ) / "notifierd" / "channels.yaml"


def default_state_dir(environ: Mapping[str, str] | None = None, root: bool | None = None) -> Path:
    if is_root() if root is None else root:
        return SYSTEM_STATE_DIR
    return _xdg_home("XDG_STATE_HOME", ".local/state", environ) / "notifierd"


def socket_for(state_dir: Path) -> Path:
    """The socket of a daemon with this state directory and no socket setting: inside the state
    directory, so that two daemons with their own state directories never share one; root's
    default state directory has its socket under /run, where systemd's RuntimeDirectory is."""
    return SYSTEM_SOCKET if state_dir == SYSTEM_STATE_DIR else state_dir / SOCKET_NAME


def _xdg_home(variable: str, fallback: str, environ: Mapping[str, str] | None) -> Path:
    environ = os.environ if environ is None else environ
    value = environ.get(variable, "")
    # The XDG base directory specification: a relative value is invalid and must be ignored.
    if value and Path(value).is_absolute():
        return Path(value)
    return Path(environ.get("HOME") or Path.home()) / fallback
