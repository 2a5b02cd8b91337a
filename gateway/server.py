"""Run the app under uvicorn (uvloop + httptools, with the edge's HTTP limits), in one process or several.

With ``--workers N`` every worker rebuilds the app from the validated config. The
secrets (admin key, metrics token) reach workers in a file only the gateway's user
can read, never through their environment (``/proc/<pid>/environ`` is readable by
the same user and by root, and is copied into every child).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.app import create_app
from gateway.config import GatewayConfig, parse_config
from gateway.http_protocol import BoundedHttpToolsProtocol, HttpLimits

_CONFIG_ENV = "MAAS_WORKER_CONFIG"
_SECRETS_ENV = "MAAS_WORKER_SECRETS"
_SECRET_VARIABLES = ("MAAS_ADMIN_KEY", "MAAS_METRICS_TOKEN")


class _Config(uvicorn.Config):
    """uvicorn's config plus the edge's HTTP limits (read by BoundedHttpToolsProtocol; pickled to workers)."""

    def __init__(self, app: Any, *, http_limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.http_limits = http_limits


def serve(config: GatewayConfig, *, config_path: str | None, workers: int = 1, access_log: bool = False) -> int:
    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = config.server
    common: dict[str, Any] = dict(
        host=server.host,
        port=server.port,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        http_limits=HttpLimits(server.max_header_bytes, server.header_timeout_s, server.body_timeout_s),
        limit_concurrency=server.max_connections,
        log_level=server.log_level,
        access_log=access_log,
        timeout_graceful_shutdown=30,
    )
    if workers <= 1:
        uvicorn.Server(_Config(create_app(config), **common)).run()
        return 0
    with _secrets_file(config) as secrets:
        os.environ[_CONFIG_ENV] = orjson.dumps(config.model_dump(mode="json")).decode()
        os.environ[_SECRETS_ENV] = str(secrets)
        for name in _SECRET_VARIABLES:
            os.environ.pop(name, None)  # workers are spawned with this environment
        settings = _Config("gateway.server:worker_app", factory=True, workers=workers, **common)
        Multiprocess(settings, sockets=[settings.bind_socket()]).run()
    return 0


@contextlib.contextmanager
def _secrets_file(config: GatewayConfig):  # noqa: ANN202 - a context manager of a Path
    folder = Path(tempfile.mkdtemp(prefix="maas-secrets-"))  # 0700
    path = folder / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps({"MAAS_ADMIN_KEY": config.admin_key, "MAAS_METRICS_TOKEN": config.metrics_token}))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


def worker_app():  # noqa: ANN201 - uvicorn factory
    """App factory for ``--workers N``: each worker process builds its own gateway."""
    secrets = orjson.loads(Path(os.environ[_SECRETS_ENV]).read_bytes())
    env = {name: value for name, value in secrets.items() if value}
    return create_app(parse_config(orjson.loads(os.environ[_CONFIG_ENV]), env=env))
