"""The embedded default as `maas serve` runs it: the bundled chat and embedding models on real vLLM
engines, one gateway shared by this package's modules.

Each engine takes 30-60 s to start on these CPUs, so the modules here share one boot; the package
scope ends it when they are done, before any other module runs (file order: the engine-death test
of ``test_vllm_gateway`` kills the chat engine, and that module runs last).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from backends.bundled_embedding import prepare_bundled_embedding
from backends.bundled_model import prepare_bundled_model
from gateway.cli import default_config_text
from gateway.config import parse_config
from tests.live_server import ADMIN_KEY, LiveServer


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    prepare_bundled_model()
    prepare_bundled_embedding()
    data = yaml.safe_load(default_config_text())
    data["ledger"] = f"sqlite:///{tmp_path_factory.mktemp('embedded-default')}/ledger.db"
    data["replicas"][0]["engine"]["restart_backoff_s"] = 0.5  # the engine-death test waits for the restart
    live = LiveServer(parse_config(data, env={"MAAS_ADMIN_KEY": ADMIN_KEY})).start(timeout=600)
    yield live
    live.stop()
