"""A fresh virtual environment with the example plugin pip-installed, for tests that run
notifierd (or a part of it) the way a user who installed a third-party worker would."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.plugins.distinfo import ROOT, declared_workers, write_dist_info

EXAMPLE = ROOT / "examples" / "notifierd-webhook"


def run(command: list[str], stdin: str | None = None) -> str:
    """Run a command; its stripped stdout, or an assertion error with all of its output."""
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def plugin_venv(workdir: Path) -> Path:
    """A new venv in `workdir` with the example plugin pip-installed (a real build: wheel,
    metadata, entry points), seeing notifierd from this checkout and its dependencies from the
    running venv. Returns the venv's python."""
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = workdir / "notifierd-webhook"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = workdir / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    )
    # The checkout first, then the dependencies; notifierd's own entry points as pyproject.toml
    # declares them (installing the checkout itself would need a newer setuptools).
    dependencies = sysconfig.get_paths()["purelib"]
    (site / "_notifierd_checkout.pth").write_text(f"{ROOT}\n{dependencies}\n", encoding="utf-8")
    write_dist_info(site, "notifierd", "0.1.0", declared_workers())
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--quiet", str(source)])  # fmt: skip
    return python
