"""The Ray tests' cluster (one per session) and gateways with ``ray`` pools on it.

These tests run only inside a network namespace of their own (see
``tests/ray_cluster.py``); ``tests/test_ray_cluster.py`` runs them there. Each
gateway under test uses SQLite and in-memory limits: PostgreSQL and Redis are
outside the namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.live_server import LiveServer
from tests.ray.gateways import ray_config
from tests.ray_cluster import ChipCluster, in_own_network_namespace


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_own_network_namespace():
        return
    skip = pytest.mark.skip(reason=(
        "Ray tests run in a network namespace of their own: tests/test_ray_cluster.py runs them there "
        "(or: unshare -n sh -c 'ip link set lo up && python -m pytest tests/ray')"
    ))
    for item in items:
        if "tests/ray/" in item.nodeid:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ChipCluster]:
    chips = ChipCluster().start()
    print(f"\nray cluster (head + {len(chips.nodes)} nodes) started in {chips.started_in_s:.1f}s")
    try:
        yield chips
    finally:
        chips.stop()
    left = chips.leftover_processes()
    assert not left, "Ray processes left behind:\n" + "\n".join(left)


@pytest.fixture
def gateway_with(tmp_path) -> Iterator[Callable[..., LiveServer]]:
    """Starts a gateway over the given pools; stops it (and so its replicas' actors) after the test."""
    started: list[LiveServer] = []

    def start(pools: list[dict[str, Any]], **kw: Any) -> LiveServer:
        server = LiveServer(ray_config(tmp_path, pools, **kw)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
