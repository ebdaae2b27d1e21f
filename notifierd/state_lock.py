"""One daemon per state directory: an exclusive lock on `STATE_DIR/notifierd.lock`.

Two daemons sharing a database would each put the other's leased deliveries back in the queue
at start-up, and send them twice. The lock is held for the daemon's life and released by the
kernel when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from notifierd.errors import StateDirInUse


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "notifierd.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateDirInUse(
                f"another notifierd (pid {holder}) is using the state directory {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
