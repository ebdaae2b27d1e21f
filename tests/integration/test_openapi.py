"""The OpenAPI description (notifierd/api/openapi.json): a valid OpenAPI 3.1 document, served at
/api/openapi.json, describing every route; and a property-based run of the real daemon against
it (schemathesis: generated requests, valid and not) that finds no 5xx, no status, header,
media type or body the document does not describe, and no traceback in the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from notifierd.api.app import build_app, openapi_document
from tests.harness import Daemon, short_socket_dir, write_config
from tests.unit.test_api import FakeIntake

TOKEN = "openapi-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHANNELS = 'channels:\n  devnull:\n    worker: "null"\n'
DOCUMENT: dict[str, Any] = json.loads(openapi_document())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def served_paths() -> set[str]:
    app = build_app(FakeIntake({}), 1024, 60)
    return {resource.canonical for resource in app.router.resources()}


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_every_route_is_described() -> None:
    assert served_paths() <= set(DOCUMENT["paths"])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("openapi")
    daemon = Daemon(
        config=write_config(root / "channels.yaml", CHANNELS),
        state_dir=root / "state",
        socket=short_socket_dir() / "ctl.sock",
        log=root / "d.log",
        env={"NOTIFIERD_API_TOKENS": TOKEN},
    )
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()
    assert "Traceback" not in daemon.log.read_text(errors="replace")


def test_the_daemon_serves_the_document(daemon: Daemon) -> None:
    response = requests.get(daemon.url("/api/openapi.json"), timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == DOCUMENT


# Only what this build routes: a route described ahead of its handler is not tested here.
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT).include(
    lambda context: context.operation.path in served_paths()
)


@SCHEMA.parametrize()
@settings(
    max_examples=100,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_generated_requests_get_described_answers(case: Any, daemon: Daemon) -> None:
    response = case.call_and_validate(
        base_url=daemon.url(""), headers=AUTH, checks=CHECKS, timeout=10
    )
    assert response.status_code < 500, response.text


def test_the_log_has_no_traceback(daemon: Daemon) -> None:
    log = Path(daemon.log).read_text(errors="replace")
    assert "Traceback" not in log
    assert "api.internal_error" not in log
