"""The gateway's configuration: one YAML file, validated by pydantic.

A bad file fails at start with a message that names the field. Secrets come from
the environment (``MAAS_ADMIN_KEY``), never from the file.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backends.settings import BackendKind, EngineConfig, ReplicaConfig
from billing.settings import LimitsConfig, Price, RateLimit
from routing.settings import SLO, RoutingConfig

__all__ = [
    "SLO",
    "BackendKind",
    "ConfigError",
    "EngineConfig",
    "GatewayConfig",
    "LimitsConfig",
    "ModelConfig",
    "Price",
    "RateLimit",
    "ReplicaConfig",
    "RoutingConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    price: Price = Field(default_factory=lambda: Price(input_per_mtok=Decimal(0), output_per_mtok=Decimal(0)))
    #: negotiated prices for some tenants (tenant name -> price)
    tenant_prices: dict[str, Price] = Field(default_factory=dict)
    #: path of a tokenizer (HF directory) for estimating usage when a backend reports none
    tokenizer: str | None = None
    #: the model's context window, used to bound max_tokens when known
    max_model_len: int | None = Field(default=None, gt=0)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    #: JSON objects and arrays a body may hold, counted before parsing (brackets inside strings count)
    max_json_containers: int = Field(default=50_000, gt=0)
    #: requests without a key are refused unless this is true (local trials only)
    allow_anonymous: bool = False
    anonymous_tenant: str = "anonymous"
    log_level: str = "info"


class GatewayConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    models: list[ModelConfig]
    replicas: list[ReplicaConfig]
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    ledger: str = "sqlite:///maas-data/maas.db"
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    #: admin key; set it with the MAAS_ADMIN_KEY environment variable
    admin_key: str | None = None

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
        return self

    def model_by_name(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if name == model.name or name in model.aliases:
                return model
        return None


class ConfigError(Exception):
    """The configuration is invalid; the message names the field."""


def parse_config(data: dict[str, Any], *, env: dict[str, str] | None = None) -> GatewayConfig:
    """Validate a config mapping, applying secrets from the environment."""
    env = os.environ if env is None else env
    data = dict(data)
    if env.get("MAAS_ADMIN_KEY"):
        data["admin_key"] = env["MAAS_ADMIN_KEY"]
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("invalid config:\n" + "\n".join(lines)) from None


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
