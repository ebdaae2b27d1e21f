"""Fixtures of the unit tests: channel files, channels, and a Store on a temporary database."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from notifierd.config import Channel, load_channels
from notifierd.store.sqlite import SqliteStore

DEFAULT_TTL = 86400

WriteYaml = Callable[[str], Path]


@pytest.fixture
def write_yaml(tmp_path: Path) -> WriteYaml:
    """Write a channel file (dedented) into tmp_path and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str) -> Path:
        path = tmp_path / f"channels-{next(counter)}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def null_channels(write_yaml: WriteYaml) -> dict[str, Channel]:
    """Channels of the null worker: `devnull` (ttl 3600), `lower` (pattern override),
    `fanout` (three recipients)."""
    path = write_yaml(
        """
        channels:
          devnull:
            worker: "null"
            ttl: 3600
          lower:
            worker: "null"
            message_pattern: "[a-z]+"
          fanout:
            worker: "null"
            params: {recipients: ["a", "b", "c"]}
        """
    )
    return load_channels(path, DEFAULT_TTL)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite_store = SqliteStore(tmp_path / "state" / "notifierd.db")
    await sqlite_store.open()
    try:
        yield sqlite_store
    finally:
        await sqlite_store.close()
