"""The gateway's configuration: one YAML file, validated by pydantic.

A bad file fails at start with a message that names the field. Secrets come from
the environment (``MAAS_ADMIN_KEY``), never from the file.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """What tenants pay, USD per 1M tokens."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    #: defaults to the input price when not set
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)


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


class EngineConfig(_Strict):
    """Settings of an in-process vLLM engine (``backend: vllm``)."""

    model_path: str | None = None  # default: the bundled SmolLM2 model
    dtype: str = "float32"
    enforce_eager: bool = True
    max_model_len: int = Field(default=2048, gt=0)
    max_num_seqs: int = Field(default=64, gt=0)
    kv_cache_gib: float | None = Field(default=None, gt=0)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    enable_prefix_caching: bool = True
    seed: int = 0
    #: environment for the engine process, e.g. CUDA_VISIBLE_DEVICES
    env: dict[str, str] = Field(default_factory=dict)
    #: supervision: restart a dead engine with exponential backoff
    restart_backoff_s: float = Field(default=1.0, gt=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)


BackendKind = Literal["vllm", "openai", "simulated"]


class ReplicaConfig(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    model: str
    backend: BackendKind
    chip: str = Field(min_length=1)
    #: what the replica costs the operator, USD per hour; defaults to the chip profile's
    cost_per_hour: Decimal | None = Field(default=None, ge=0)
    # openai backend
    url: str | None = None
    api_key_env: str | None = None  # name of the env var holding the upstream key
    upstream_model: str | None = None  # model name the upstream knows, default: `model`
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    metrics_url: str | None = None  # vLLM /metrics to scrape; default derived from url
    # vllm backend
    engine: EngineConfig | None = None
    # simulated backend
    time_scale: float = Field(default=1.0, gt=0)  # 0.01 = run 100x faster than real time
    seed: int = 0

    @model_validator(mode="after")
    def _backend_settings(self) -> ReplicaConfig:
        if self.backend == "openai" and not self.url:
            raise ValueError("backend 'openai' needs 'url' (e.g. http://host:8000/v1)")
        if self.backend == "vllm" and self.engine is None:
            self.engine = EngineConfig()
        return self


class SLO(_Strict):
    ttft_ms: float = Field(default=1000, gt=0)
    tpot_ms: float = Field(default=100, gt=0)


class RoutingConfig(_Strict):
    policy: str = "cost_latency"
    slo: SLO = Field(default_factory=SLO)
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: total time budget for all attempts before the first byte
    deadline_s: float = Field(default=30.0, gt=0)
    health_interval_s: float = Field(default=5.0, gt=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)
    ewma_alpha: float = Field(default=0.2, gt=0, le=1)


class RateLimit(_Strict):
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    concurrent: int | None = Field(default=None, ge=0)


class LimitsConfig(_Strict):
    """Default limits applied to every key / tenant (per-key values override)."""

    store: str = "memory"  # or redis://host:port/db
    per_key: RateLimit = Field(default_factory=RateLimit)
    per_tenant: RateLimit = Field(default_factory=RateLimit)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
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
