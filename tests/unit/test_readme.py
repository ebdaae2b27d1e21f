"""The README is the user's manual: it names every setting, every built-in worker type and every
notifierctl command, and its links lead somewhere. (Its logrotate stanza and its
message_pattern recipe are run by test_operator.py and test_config.py.)"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from notifierd.cli.ctl import build_parser
from notifierd.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = (README, ROOT / "bench" / "README.md", ROOT / "docs" / "performance.md")


def text(path: Path = README) -> str:
    return path.read_text(encoding="utf-8")


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_a_row_with_its_flag_and_variable(name: str) -> None:
    flag = "`--" + name.replace("_", "-") + "`"
    env = f"`NOTIFIERD_{name.upper()}`"
    rows = [row for row in table_rows(text()) if flag in row and env in row]
    assert rows, f"README: no settings row with {flag} and {env}"


def test_every_built_in_worker_has_a_params_row_and_a_limit_row() -> None:
    pyproject = tomllib.loads(text(ROOT / "pyproject.toml"))
    workers = pyproject["project"]["entry-points"]["notifierd.workers"]
    rows = table_rows(text())
    for name in workers:
        described = [row for row in rows if row.startswith(f"| `{name}`")]
        assert len(described) >= 2, f"README: {name} needs a row in the params and limits tables"


def test_every_notifierctl_command_is_in_the_usage_block() -> None:
    [usage] = re.findall(r"## notifierctl\n\n```\n(.*?)```", text(), re.S)
    [commands] = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    for command in commands.choices:
        assert re.search(rf"^notifierctl .*\b{command}\b", usage, re.M), command


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_lead_somewhere(path: Path) -> None:
    markdown = text(path)
    anchors = {slug(heading) for heading in re.findall(r"^#+ (.*)$", markdown, re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", markdown):
        if target.startswith("https://"):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, f"{path.name}: no heading for {target}"
        else:
            assert (path.parent / target).exists(), f"{path.name}: {target} does not exist"
