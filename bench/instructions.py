"""Instructions per request, counted by callgrind (valgrind): a figure that, unlike requests
per second, does not move with what else a shared machine is doing. The same program, inputs
and libraries give the same count to within about half a percent, so a change to the hot path
can be judged by it where the rate's noise (30-40% between runs) hides it.

It counts the instructions of the server's process (all its threads) in user space: not the
kernel's work (system calls, the disk), nor the worker processes'."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def installed() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


class Callgrind:
    """Where one server's counts go. Pass `prefix` as the server's command prefix: the
    counting is off until `counting()`."""

    def __init__(self, folder: Path) -> None:
        self.out = folder / "callgrind.out"

    @property
    def prefix(self) -> list[str]:
        return [
            "valgrind",
            "--quiet",  # its banner would go to the baseline's stderr, the bench's own
            "--tool=callgrind",
            "--instr-atstart=no",  # not the imports and the start-up
            f"--callgrind-out-file={self.out}",
        ]

    @contextlib.contextmanager
    def counting(self, pid: int) -> Iterator[None]:
        self._control("-i", "on", pid)
        try:
            yield
        finally:
            self._control("-i", "off", pid)
            self._control("-d", pid)  # write the counts out now

    def total(self) -> int:
        """The instructions counted, over every dump written so far."""
        total = 0
        for dump in self.out.parent.glob(f"{self.out.name}*"):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):
                    total += int(line.split()[1])
        return total

    @staticmethod
    def _control(*args: str | int) -> None:
        subprocess.run(
            ["callgrind_control", *map(str, args)], check=True, capture_output=True, timeout=120
        )


@contextlib.contextmanager
def callgrind() -> Iterator[Callgrind]:
    with tempfile.TemporaryDirectory(prefix="notifierd-callgrind-") as folder:
        yield Callgrind(Path(folder))
