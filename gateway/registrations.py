"""What a replica registered at run time (POST /admin/replicas) may ask of the gateway.

A registration comes over the network with the admin key; it must not be able to
aim the gateway at addresses the operator has not allowed (``admin.replica_urls``),
nor have any environment variable of the gateway sent upstream as a bearer token:
its ``api_key_env`` must be one the config itself declares. (``engine.env`` is
allow-listed for every replica, by ``backends.engine_env``.)
"""

from __future__ import annotations

from backends.settings import ReplicaConfig
from backends.url_policy import UrlRefused
from gateway import errors
from gateway.config import GatewayConfig


async def vet_registration(spec: ReplicaConfig, config: GatewayConfig) -> None:
    """Raise a 400 naming the field unless ``spec`` stays within what the config permits."""
    for field, url in (("url", spec.url), ("metrics_url", spec.metrics_url)):
        if url is None:
            continue
        try:
            await config.admin.replica_urls.check_url(url)
        except UrlRefused as exc:
            raise errors.bad_request(
                f"Replica {field} refused: {exc}. Allowed upstreams are set by admin.replica_urls in the config.",
                param=field,
                code="url_not_allowed",
            ) from None
    if spec.api_key_env is not None and spec.api_key_env not in config.upstream_key_envs():
        raise errors.bad_request(
            f"api_key_env {spec.api_key_env!r} is not an upstream key variable the config declares; list it under "
            "admin.upstream_key_envs to let registrations use it.",
            param="api_key_env",
            code="api_key_env_not_allowed",
        )
