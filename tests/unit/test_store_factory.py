"""The Store as a port: what importing it loads, the backend a URL picks, the store_url
setting, and the state dir's lock error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from notifierd.cli.daemon import main as daemon_main
from notifierd.errors import EXIT_CONFIG, ConfigError, StateDirInUse, StoreError
from notifierd.settings import Settings
from notifierd.state_lock import StateLock
from notifierd.store.factory import (
    StoreUrlError,
    check_store_url,
    default_store_url,
    open_store,
    parse_store_url,
    url_without_password,
)
from notifierd.store.postgres.schema import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from notifierd.store.postgres.store import PostgresStore
from notifierd.store.sqlite import SqliteStore
from notifierd.store.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "channels.yaml"
#: What the port must not load: the channel file's machinery, the parts that use the Store,
#: and any backend.
NOT_LOADED = (
    "yaml",
    "notifierd.config",
    "notifierd.workers",
    "notifierd.api",
    "notifierd.channels",
    "notifierd.store.sqlite",
)


def loaded_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter has after `statement`."""
    program = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(completed.stdout))


@pytest.mark.parametrize("statement", ["import notifierd.store.base", "import notifierd.store"])
def test_the_port_loads_no_config_workers_yaml_or_backend(statement: str) -> None:
    modules = loaded_modules(statement)
    assert "notifierd.store.base" in modules
    assert [name for name in NOT_LOADED if name in modules] == []


def test_the_retry_policy_is_a_leaf() -> None:
    modules = loaded_modules("import notifierd.retry")
    assert [name for name in modules if name.startswith("notifierd.")] == ["notifierd.retry"]


# -- URLs -----------------------------------------------------------------------------------


def test_the_default_url_is_the_state_dirs_database(tmp_path: Path) -> None:
    state_dir = tmp_path / "a dir with spaces%"
    url = default_store_url(state_dir)
    assert url.startswith("sqlite:///")
    assert parse_store_url(url).path == state_dir / "notifierd.db"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/notifierd/notifierd.db", "/var/lib/notifierd/notifierd.db"),
        ("sqlite:////var/lib/notifierd/notifierd.db", "/var/lib/notifierd/notifierd.db"),
        ("SQLite:///tmp/x%20y.db", "/tmp/x y.db"),
    ],
)
def test_sqlite_urls_name_an_absolute_path(url: str, path: str) -> None:
    parsed = parse_store_url(url)
    assert (parsed.backend, parsed.path) == ("sqlite", Path(path))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "is not a URL"),
        ("/var/lib/notifierd/notifierd.db", "sqlite:///var/lib/notifierd/notifierd.db"),
        ("notifierd.db", "is not a URL"),
        ("mysql://u:hunter2@db/notifierd", "unknown kind of store 'mysql'"),
        ("sqlite://host/notifierd.db", "names a host"),
        ("sqlite:notifierd.db", "needs an absolute path"),
        ("sqlite://", "needs an absolute path"),
        ("sqlite:///var/lib/notifierd/", "does not name a database file"),
        ("sqlite:///x.db?mode=ro", "has a query or fragment"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(StoreUrlError, match="the store URL") as caught:
        parse_store_url(url)
    assert says in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_postgresql_url_makes_a_postgresql_store_not_connected_yet() -> None:
    url = "postgresql://notifierd:hunter2@db.example:5432/queue?sslmode=require"
    assert parse_store_url(url).backend == "postgresql"
    store = open_store(url, owner="host:1:abcd")
    assert type(store).__name__ == "PostgresStore"
    assert store.owner == "host:1:abcd"
    assert store.location == "postgresql://notifierd:***@db.example:5432/queue?sslmode=require"


def test_a_postgresql_url_without_the_driver_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # `import asyncpg` fails
    url = "postgresql://notifierd:hunter2@db.example:5432/queue?sslmode=require"
    with pytest.raises(StoreUrlError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "postgresql://notifierd:***@db.example:5432/queue?sslmode=require" in message
    assert "pip install 'notifierd[postgresql]'" in message
    assert "hunter2" not in message
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:se/cr@et@h:5/db", "postgresql://u:***@h:5/db"),
        (
            "postgresql://h/db?user=u&password=secret&x=1",
            "postgresql://h/db?user=u&password=***&x=1",
        ),
        ("postgres://u:secret@h/db?Password=secret", "postgres://u:***@h/db?Password=***"),
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert url_without_password(url) == shown


async def test_open_store_makes_the_sqlite_store_the_url_names(tmp_path: Path) -> None:
    path = tmp_path / "state" / "notifierd.db"
    store = open_store(default_store_url(tmp_path / "state"), owner="host:1:abcd")
    assert isinstance(store, SqliteStore)
    assert (store.path, store.owner, store.location) == (path, "host:1:abcd", str(path))
    async with store:
        assert await store.has_pending("c") is False
    assert path.exists()
    with pytest.raises(StoreError, match="closed"):
        await store.has_pending("c")


def test_a_store_without_an_owner_gets_a_node_id(tmp_path: Path) -> None:
    first = open_store(default_store_url(tmp_path))
    second = open_store(default_store_url(tmp_path))
    host, pid, random_part = first.owner.split(":")
    assert host and int(pid) > 0 and len(random_part) == 8
    assert first.owner != second.owner
    assert check_store_url(default_store_url(tmp_path)).backend == "sqlite"


# -- the store_url setting ------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"NOTIFIERD_{name.upper()}", raising=False)
    return monkeypatch


def test_the_store_url_defaults_to_the_state_dirs_database(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path)
    assert settings.store_url is None
    assert parse_store_url(settings.effective_store_url).path == settings.database_path
    clean_env.setenv("NOTIFIERD_STORE_URL", "sqlite:///elsewhere/q.db")
    assert Settings(state_dir=tmp_path).effective_store_url == "sqlite:///elsewhere/q.db"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (["--store-url", "mysql://u:hunter2@db/q"], "mysql://u:***@db/q"),
        (["--store-url", "/var/q.db"], "is not a URL"),
    ],
)
def test_a_bad_store_url_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: list[str],
    says: str,
) -> None:
    assert daemon_main([*given, "check-config", "--config", str(EXAMPLE)]) == EXIT_CONFIG
    clean_env.setenv("NOTIFIERD_STORE_URL", given[1])
    assert daemon_main(["check-config", "--config", str(EXAMPLE)]) == EXIT_CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert "setting store_url (--store-url or NOTIFIERD_STORE_URL)" in err
    assert says in err
    assert "hunter2" not in err


def test_dead_after_reaches_the_store_through_open_store(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings(state_dir=tmp_path).dead_after == 10.0
    clean_env.setenv("NOTIFIERD_DEAD_AFTER", "2.5")
    settings = Settings(state_dir=tmp_path, store_url="postgresql://u@h/db")
    assert settings.dead_after == 2.5
    store = open_store(settings.effective_store_url, dead_after=settings.dead_after)
    assert isinstance(store, PostgresStore)
    assert store._liveness.dead_after == 2.5
    assert store.schema_version == POSTGRES_SCHEMA_VERSION
    # SQLite has one host: the setting is accepted and changes nothing.
    sqlite = open_store(default_store_url(tmp_path), dead_after=2.5)
    assert sqlite.schema_version == SQLITE_SCHEMA_VERSION


@pytest.mark.parametrize("value", ["0", "0.5", "-3", "3601", "ten", "nan"])
def test_a_bad_dead_after_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    argv = ["check-config", "--config", str(EXAMPLE)]
    assert daemon_main(["--dead-after", value, *argv]) == EXIT_CONFIG
    clean_env.setenv("NOTIFIERD_DEAD_AFTER", value)
    assert daemon_main(argv) == EXIT_CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("setting dead_after (--dead-after or NOTIFIERD_DEAD_AFTER)") == 2


# -- the state dir's lock -------------------------------------------------------------------


def test_a_held_state_dir_is_not_a_store_error(tmp_path: Path) -> None:
    first = StateLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(StateDirInUse, match="another notifierd") as caught:
            StateLock(tmp_path).acquire()
        assert not isinstance(caught.value, StoreError)
    finally:
        first.release()
