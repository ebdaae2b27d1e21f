"""Make a directory look like an installed distribution to `importlib.metadata`, so entry-point
lookup can be tested without pip-installing anything."""

from __future__ import annotations

import tomllib
from pathlib import Path

from notifierd.workers.registry import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[2]


def declared_workers(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """The `notifierd.workers` entry points a pyproject.toml declares."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    workers: dict[str, str] = data["project"]["entry-points"][ENTRY_POINT_GROUP]
    return workers


def write_dist_info(site: Path, name: str, version: str, workers: dict[str, str]) -> Path:
    """A minimal `<name>-<version>.dist-info` in `site` declaring `workers` as entry points."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{key} = {value}" for key, value in workers.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dist_info
