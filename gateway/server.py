"""Run the app under uvicorn (uvloop + httptools), in one process or several."""

from __future__ import annotations

import logging
import os

import orjson

from gateway.app import create_app
from gateway.config import GatewayConfig, parse_config

_CONFIG_ENV = "MAAS_WORKER_CONFIG"


def serve(config: GatewayConfig, *, config_path: str | None, workers: int = 1, access_log: bool = False) -> int:
    import uvicorn

    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    common = dict(
        host=config.server.host,
        port=config.server.port,
        loop="uvloop",
        http="httptools",
        log_level=config.server.log_level,
        access_log=access_log,
        timeout_graceful_shutdown=30,
    )
    if workers <= 1:
        uvicorn.run(create_app(config), **common)  # type: ignore[arg-type]
        return 0
    # worker processes rebuild the app from the validated config, passed down the environment
    os.environ[_CONFIG_ENV] = orjson.dumps(config.model_dump(mode="json")).decode()
    uvicorn.run("gateway.server:worker_app", factory=True, workers=workers, **common)  # type: ignore[arg-type]
    return 0


def worker_app():  # noqa: ANN201 - uvicorn factory
    """App factory for ``--workers N``: each worker process builds its own gateway."""
    return create_app(parse_config(orjson.loads(os.environ[_CONFIG_ENV])))
