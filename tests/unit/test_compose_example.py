"""examples/compose/compose.yaml (README, "Running several hosts"): PostgreSQL and two notifierd
hosts sharing it, each with its own state volume. No container engine runs where the tests
run: the file is read with PyYAML and checked against the image (Dockerfile), the settings and
the store URL's parser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from notifierd.settings import Settings, unknown_variables
from notifierd.store.factory import parse_store_url
from tests.unit.test_image import env_of, stages

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "examples" / "compose" / "compose.yaml"
HOSTS = ("notifierd-a", "notifierd-b")
#: ${NAME:-default} as compose substitutes it.
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def substitute(value: str) -> str:
    """The value as compose would give it with no variable set: each ${NAME:-default} its
    default."""
    return VARIABLE.sub(lambda found: found.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def image_env() -> dict[str, str]:
    return env_of(stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))[-1])


def test_postgresql_and_two_hosts(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", *HOSTS}
    for host in HOSTS:
        service = compose["services"][host]
        # Built from this repository's Dockerfile, started once the database answers.
        assert (COMPOSE.parent / service["build"]).resolve() == ROOT
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "healthcheck" in compose["services"]["postgres"]


def test_every_host_names_the_one_database_by_its_service(compose: dict[str, Any]) -> None:
    database = {k: substitute(v) for k, v in compose["services"]["postgres"]["environment"].items()}
    for host in HOSTS:
        url = substitute(compose["services"][host]["environment"]["NOTIFIERD_STORE_URL"])
        assert parse_store_url(url).backend == "postgresql"
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("postgres", 5432)
        assert parts.username == database["POSTGRES_USER"]
        assert parts.password == database["POSTGRES_PASSWORD"]
        assert parts.path == "/" + database["POSTGRES_DB"]
        # The settings take it (the driver is installed here, as in the image).
        settings = Settings(store_url=url, config=ROOT / "etc" / "channels.yaml")
        assert settings.effective_store_url == url


def test_the_password_comes_from_one_variable(compose: dict[str, Any]) -> None:
    password = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD")
    for host in HOSTS:
        assert password in compose["services"][host]["environment"]["NOTIFIERD_STORE_URL"]


def test_every_notifierd_variable_is_a_setting(compose: dict[str, Any]) -> None:
    for host in HOSTS:
        environment = compose["services"][host]["environment"]
        assert unknown_variables(environment) == []


def test_each_host_keeps_its_own_state_volume_and_port(
    compose: dict[str, Any], image_env: dict[str, str]
) -> None:
    state_dir = image_env["NOTIFIERD_STATE_DIR"]
    volumes, ports = [], []
    for host in HOSTS:
        service = compose["services"][host]
        mounts = {}
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            mounts[target] = source
        volumes.append(mounts[state_dir])
        assert mounts[state_dir] in compose["volumes"], "a named volume, declared"
        channels = mounts[image_env["NOTIFIERD_CONFIG"]]
        assert (COMPOSE.parent / channels).resolve() == ROOT / "etc" / "channels.yaml"
        [port] = service["ports"]
        published, container = port.rsplit(":", 1)
        assert container == image_env["NOTIFIERD_PORT"]
        ports.append(published)
    assert len(set(volumes)) == len(HOSTS)
    assert len(set(ports)) == len(HOSTS)


def test_the_image_can_open_a_postgresql_store() -> None:
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"^asyncpg==", lock, re.M), "the image would lack the postgresql extra"


def test_the_readme_shows_the_compose_file(compose: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [section] = re.findall(r"\n## Running several hosts\n(.*?)\n## ", readme, re.S)
    assert "examples/compose/compose.yaml" in section
    assert "docker compose -f examples/compose/compose.yaml up" in section
    services = re.findall(r"compose\.yaml exec (\S+) notifierctl", section)
    assert services and set(services) <= set(HOSTS)
