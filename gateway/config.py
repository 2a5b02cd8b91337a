"""The gateway's configuration: one YAML file, validated by pydantic.

A bad file fails at start with a message that names the field. Secrets come from
the environment (``MAAS_ADMIN_KEY``, ``MAAS_METRICS_TOKEN``, upstream keys), never
from the file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backends.settings import BackendKind, EngineConfig, PoolConfig, ReplicaConfig
from backends.url_policy import UrlPolicy
from billing.settings import LimitsConfig, Price, RateLimit, StreamsConfig
from routing.settings import SLO, PlannerConfig, RoutingConfig

__all__ = [
    "SLO",
    "AdminConfig",
    "BackendKind",
    "ConfigError",
    "EngineConfig",
    "GatewayConfig",
    "LimitsConfig",
    "ModelConfig",
    "PoolConfig",
    "Price",
    "RateLimit",
    "ReplicaConfig",
    "RoutingConfig",
    "ServerConfig",
    "is_loopback",
    "load_config",
    "parse_config",
    "with_server",
]

#: environment variables that hold the gateway's own secrets
ADMIN_KEY_ENV = "MAAS_ADMIN_KEY"
METRICS_TOKEN_ENV = "MAAS_METRICS_TOKEN"
#: the admin key guards the whole operator surface: long enough that guessing is hopeless
ADMIN_KEY_MIN_CHARS = 32
_SECRET_FIELDS = {"admin_key": ADMIN_KEY_ENV, "metrics_token": METRICS_TOKEN_ENV}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    #: what the model does: ``chat`` (chat, completions, Responses, Messages) or ``embedding`` (embeddings)
    kind: Literal["chat", "embedding"] = "chat"
    #: USD per 1M tokens; an embedding model is charged its input tokens only
    price: Price = Field(default_factory=lambda: Price(input_per_mtok=Decimal(0), output_per_mtok=Decimal(0)))
    #: negotiated prices for some tenants (tenant name -> price)
    tenant_prices: dict[str, Price] = Field(default_factory=dict)
    #: path of a tokenizer (HF directory) for estimating usage when a backend reports none
    tokenizer: str | None = None
    #: the model's context window, used to bound max_tokens when known
    max_model_len: int | None = Field(default=None, gt=0)

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_is_a_directory(cls, path: str | None) -> str | None:
        # loaded when the gateway starts: a wrong path fails here, in one line, not in a traceback there
        if path is not None and not Path(path).expanduser().is_dir():
            raise ValueError(f"no tokenizer directory at {path!r} (a local Hugging Face tokenizer directory)")
        return path


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name we do not resolve here: treat as reachable from the network


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    #: JSON objects and arrays a body may hold, counted before parsing (brackets inside strings count)
    max_json_containers: int = Field(default=50_000, gt=0)
    #: requests without a key are served as ``anonymous_tenant`` (local trials); only on a loopback host
    allow_anonymous: bool = False
    #: serve anonymous requests on a non-loopback host too: an open gateway, on purpose (logged at start)
    allow_anonymous_remote: bool = False
    anonymous_tenant: str = "anonymous"
    log_level: str = "info"
    #: request line and headers, at most (431 beyond)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: a request's headers must arrive within this of its first byte, its body within
    #: ``body_timeout_s`` of the headers (408 and the connection closed otherwise)
    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    #: open connections and requests at once, at most (503 beyond)
    max_connections: int = Field(default=4096, ge=1, le=1_000_000)
    #: bodies over 256 KB one key may send per second (one at a time; 429 beyond, before reading them)
    large_body_bytes_per_s: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    #: large bodies of one key read and parsed at once (of four for all keys); a replica server
    #: behind a gateway, whose one client carries every tenant's requests, raises it to four
    large_bodies_per_key: int = Field(default=1, ge=1, le=4)
    #: origins a browser may call the API from (CORS); empty: no cross-origin access at all
    cors_origins: list[str] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _anonymous_is_local(self) -> ServerConfig:
        if self.allow_anonymous and not self.allow_anonymous_remote and not is_loopback(self.host):
            raise ValueError(
                f"allow_anonymous serves requests without a key, which is allowed only on a loopback host, not "
                f"{self.host!r}: create keys (`maas keys create`) and set allow_anonymous: false, or set "
                "allow_anonymous_remote: true to open the gateway to the network on purpose"
            )
        return self


class AdminConfig(_Strict):
    """Limits on what the admin API may register at run time."""

    #: where replicas registered through POST /admin/replicas may live
    replica_urls: UrlPolicy = Field(default_factory=UrlPolicy)
    #: environment variables a registered replica may name as its ``api_key_env`` (besides
    #: those the config's own replicas use)
    upstream_key_envs: list[str] = Field(default_factory=list)

    @field_validator("upstream_key_envs")
    @classmethod
    def _not_our_secrets(cls, names: list[str]) -> list[str]:
        for name in names:
            _check_upstream_key_env(name)
        return names


def _check_upstream_key_env(name: str) -> None:
    if name.startswith("MAAS_"):
        raise ValueError(f"{name} holds one of the gateway's own secrets and is never sent to an upstream")


class GatewayConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    models: list[ModelConfig]
    #: replicas that always run (a pool of fixed size each)
    replicas: list[ReplicaConfig] = Field(default_factory=list)
    #: replicas started and stopped by the fleet planner through each pool's actuator
    pools: list[PoolConfig] = Field(default_factory=list)
    fleet: PlannerConfig = Field(default_factory=PlannerConfig)
    streams: StreamsConfig = Field(default_factory=StreamsConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    ledger: str = "sqlite:///maas-data/maas.db"
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    #: secrets: from the environment only (MAAS_ADMIN_KEY, MAAS_METRICS_TOKEN); never dumped, never printed
    admin_key: str | None = Field(default=None, exclude=True, repr=False)
    metrics_token: str | None = Field(default=None, exclude=True, repr=False)

    @field_validator("limits", mode="before")
    @classmethod
    def _limits_shorthand(cls, value: Any) -> Any:
        # `limits: redis://...` is shorthand for `limits: {store: redis://...}`
        return {"store": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_references(self) -> GatewayConfig:
        names: dict[str, str] = {}
        for model in self.models:
            for name in (model.name, *model.aliases):
                if name in names:
                    raise ValueError(f"models: name {name!r} is used twice")
                names[name] = model.name
        seen: set[str] = set()
        for i, replica in enumerate(self.replicas):
            if replica.id in seen:
                raise ValueError(f"replicas.{i}.id: duplicate replica id {replica.id!r}")
            seen.add(replica.id)
            if replica.model not in {m.name for m in self.models}:
                raise ValueError(
                    f"replicas.{i}.model: {replica.model!r} is not a model name in 'models'"
                )
            if replica.api_key_env:
                try:
                    _check_upstream_key_env(replica.api_key_env)
                except ValueError as exc:
                    raise ValueError(f"replicas.{i}.api_key_env: {exc}") from None
        pools: set[str] = set()
        for i, pool in enumerate(self.pools):
            if pool.name in pools:
                raise ValueError(f"pools.{i}.name: duplicate pool name {pool.name!r}")
            pools.add(pool.name)
            if pool.model not in {m.name for m in self.models}:
                raise ValueError(f"pools.{i}.model: {pool.model!r} is not a model name in 'models'")
        if not self.replicas and not self.pools:
            raise ValueError("replicas: configure at least one replica or pool")
        from routing.policies import make_policy  # the one place policies are built

        try:
            make_policy(self.routing.policy, slo=self.routing.slo)
        except ValueError as exc:
            raise ValueError(f"routing.policy: {exc}") from None
        return self

    def upstream_key_envs(self) -> set[str]:
        """The environment variables an upstream key may come from: those this config declares."""
        return {*self.admin.upstream_key_envs, *(r.api_key_env for r in self.replicas if r.api_key_env)}

    def model_by_name(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if name == model.name or name in model.aliases:
                return model
        return None


class ConfigError(Exception):
    """The configuration is invalid; the message names the field."""


def parse_config(data: dict[str, Any], *, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate a config mapping, then take its secrets from the environment."""
    env = os.environ if env is None else env
    for name, variable in _SECRET_FIELDS.items():
        if name in data:
            raise ConfigError(
                f"invalid config:\n  {name}: secrets are not read from the config file; set the {variable} "
                "environment variable instead"
            )
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    admin_key = env.get(ADMIN_KEY_ENV) or None
    if admin_key is not None and len(admin_key) < ADMIN_KEY_MIN_CHARS:
        raise ConfigError(
            f"{ADMIN_KEY_ENV} is {len(admin_key)} characters long; it must have at least {ADMIN_KEY_MIN_CHARS} "
            "(generate one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    config.admin_key = admin_key
    config.metrics_token = env.get(METRICS_TOKEN_ENV) or None
    return config


def with_server(config: GatewayConfig, **changes: Any) -> GatewayConfig:
    """``config`` with some ``server`` settings replaced (``--host``, ``--port``), validated again."""
    try:
        server = ServerConfig.model_validate({**config.server.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, prefix="server")) from None
    return config.model_copy(update={"server": server})


def _describe(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "invalid config:\n" + "\n".join(lines)


def load_config(path: str | Path, *, env: dict[str, str] | None = None) -> GatewayConfig:
    """Read and validate a YAML config file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: top level must be a mapping")
    return parse_config(data, env=env)
