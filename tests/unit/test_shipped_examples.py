"""The commented examples of etc/channels.yaml, uncommented, are valid channels: a user who
copies one gets a channel file `check-config` accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notifierd.config import load_channels
from notifierd.workers.registry import BUILTIN_WORKERS

EXAMPLE = Path(__file__).parents[2] / "etc" / "channels.yaml"
#: A commented line of YAML ("  #   worker: x"), not a comment within the example
#: ("  #     # why").
_COMMENTED = re.compile(r"^  # (?!\s*#)(.*\S.*)$")


def uncommented_examples() -> str:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    examples = [m.group(1) for line in lines if (m := _COMMENTED.match(line))]
    # Only the blocks that are YAML: a channel name at two spaces and what is under it.
    start = next(i for i, line in enumerate(examples) if re.fullmatch(r"[a-z_]+:", line))
    return "channels:\n" + "".join(f"  {line}\n" for line in examples[start:])


def test_each_commented_example_is_a_valid_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "channels.yaml"
    config.write_text(uncommented_examples(), encoding="utf-8")
    for name in re.findall(r"\$\{([A-Z_]+)\}", config.read_text(encoding="utf-8")):
        url = name.endswith("_URL")
        monkeypatch.setenv(name, "https://example.org/0123456789abcdef" if url else "A0123456789")

    channels = load_channels(config, default_ttl=3600)

    # Every built-in worker type has an example (null is the channel the file runs with).
    assert {c.worker_type for c in channels.values()} == set(BUILTIN_WORKERS) - {"null"}
