"""Fixtures of the cluster tests: hosts on a fresh database of the shared server (or of a
server of the test's own, which it may restart), a fake webhook endpoint that tells the hosts
apart, and a finalizer that ends every process a test started, also when it failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster
from tests.cluster.endpoint import Endpoint
from tests.postgres import TempServer, create_database

ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    fake = Endpoint()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """`make_cluster(url, config_for, env=None)`: a Cluster (no host started yet); every one
    made is cleaned up after the test."""
    made: list[Cluster] = []

    def make(
        url: str, config_for: Callable[[str], str], env: dict[str, str] | None = None
    ) -> Cluster:
        cluster = Cluster(tmp_path, url, config_for, env)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.cleanup()


@pytest.fixture
def own_server_url(postgres_server: TempServer) -> str:
    """A fresh database on a server of the test's own (dropped with the server)."""
    return create_database(postgres_server.url)
