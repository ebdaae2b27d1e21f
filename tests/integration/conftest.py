from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon, short_socket_dir, write_config

DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Create (not start) daemons from a channel file text; all are cleaned up after."""
    made: list[Daemon] = []

    def make(
        config_text: str,
        name: str = "d",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        command: list[str] | None = None,
    ) -> Daemon:
        config = write_config(tmp_path / f"{name}-channels.yaml", config_text)
        daemon = Daemon(
            config=config,
            state_dir=tmp_path / f"{name}-state",
            socket=short_socket_dir() / "ctl.sock",
            log=tmp_path / f"{name}.log",
            env=env,
            extra_args=extra_args,
            command=command,
        )
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.cleanup()
