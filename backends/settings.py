"""Replica and pool settings (the `replicas:` and `pools:` entries of the gateway config)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backends.chips import CHIPS
from backends.engine_env import check_engine_env


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    #: vLLM tool parser that reads tool calls from the output (``hermes`` reads the
    #: documented tool-prompt format used when the chat template does not render tools)
    tool_parser: str = "hermes"
    #: environment for the engine's processes: device visibility, thread counts, VLLM_* tuning
    #: (allow-listed in backends.engine_env)
    env: dict[str, str] = Field(default_factory=dict)
    #: supervision: restart a dead engine with exponential backoff
    restart_backoff_s: float = Field(default=1.0, gt=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)

    @field_validator("env")
    @classmethod
    def _allowed_env(cls, env: dict[str, str]) -> dict[str, str]:
        return check_engine_env(env)


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
    #: the pool a replica registered from outside joins (``external`` actuator)
    pool: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _backend_settings(self) -> ReplicaConfig:
        if self.backend == "openai" and not self.url:
            raise ValueError("backend 'openai' needs 'url' (e.g. http://host:8000/v1)")
        if self.backend == "vllm" and self.engine is None:
            self.engine = EngineConfig()
        if self.chip not in CHIPS and (self.backend == "simulated" or self.cost_per_hour is None):
            # the simulated double needs the chip's profile; any other replica needs a price for its hours
            known = ", ".join(sorted(CHIPS))
            need = "a chip the catalog knows"
            if self.backend != "simulated":
                need = "cost_per_hour, or " + need
            raise ValueError(f"chip {self.chip!r} is unknown; replica {self.id!r} needs {need} ({known})")
        return self


class RayPoolSettings(_Strict):
    """The ``ray:`` block of a pool whose actuator is ``ray`` (placement: ``backends.actuators.ray_placement``)."""

    #: ``auto`` (this machine is a node of the cluster), the head's ``host:port`` (likewise),
    #: or ``ray://host:10001`` (Ray Client: the gateway runs outside the cluster)
    address: str = Field(default="auto", min_length=1)
    namespace: str = Field(default="maas", min_length=1, max_length=64)
    #: CPUs and memory one replica's actor reserves (Ray's logical resources)
    num_cpus: float = Field(default=1.0, ge=0)
    memory_gib: float | None = Field(default=None, gt=0)
    #: how many units of the chip's resource one replica takes (e.g. 2 GPUs for tensor parallel 2)
    accelerators: float = Field(default=1.0, gt=0)
    #: the accelerator type to ask for instead of the chip's (a node reporting ``Ascend910B3``)
    accelerator_type: str | None = Field(default=None, min_length=1)
    #: the resources to ask for instead of the chip mapping (``GPU`` allowed; CPU and memory stay separate)
    resources: dict[str, float] | None = None
    #: ``spread``: replicas of a pool on different nodes where possible (one node's death takes fewer)
    strategy: Literal["spread", "pack"] = "spread"
    #: how long placement plus the replica's start may take; default max(120 s, 5 x the cold start)
    start_timeout_s: float | None = Field(default=None, gt=0)
    #: Ray's runtime_env for the replica's actor (``env_vars``, ``py_modules``, ...)
    runtime_env: dict[str, Any] | None = None

    @field_validator("resources")
    @classmethod
    def _no_cpu_or_memory(cls, resources: dict[str, float] | None) -> dict[str, float] | None:
        for name, amount in (resources or {}).items():
            if name in ("CPU", "memory", "object_store_memory"):
                raise ValueError(f"{name!r} is set with num_cpus / memory_gib, not in resources")
            if amount <= 0:
                raise ValueError(f"{name!r} must be a positive amount, not {amount}")
        return resources


ActuatorKind = Literal["local", "simulated", "external", "ray"]
_TEMPLATE_FIELDS = frozenset(ReplicaConfig.model_fields) - {"id", "model", "backend", "chip", "cost_per_hour", "pool"}


class PoolConfig(_Strict):
    """A pool: the replicas of one model on one chip kind, started and stopped by an actuator.

    ``replica`` is the template every replica is built from (``ReplicaConfig`` fields other
    than id, model, backend, chip and cost); ``command`` starts a local OpenAI-compatible
    server process (``local`` actuator with ``backend: openai``; ``{port}`` and ``{model}``
    are filled in).
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    model: str
    chip: str = Field(min_length=1)
    backend: BackendKind
    actuator: ActuatorKind
    min: int = Field(default=0, ge=0)
    max: int = Field(default=1, ge=1, le=1024)
    #: first estimate of a start (replaced by the measured one); default: the chip's cited figure
    cold_start_s: float | None = Field(default=None, ge=0)
    cost_per_hour: Decimal | None = Field(default=None, ge=0)
    replica: dict[str, Any] = Field(default_factory=dict)
    command: list[str] | None = None
    #: ``ray`` actuator: the cluster address and the resources each replica's actor asks for
    ray: RayPoolSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.min > self.max:
            raise ValueError(f"pool {self.name!r}: min ({self.min}) is above max ({self.max})")
        unknown = sorted(set(self.replica) - _TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f"pool {self.name!r}: unknown replica setting {unknown[0]!r}")
        if self.actuator == "local" and self.backend == "openai" and not self.command:
            raise ValueError(f"pool {self.name!r}: a local pool of openai replicas needs 'command' (the server to start)")
        if self.actuator == "simulated" and self.backend != "simulated":
            raise ValueError(f"pool {self.name!r}: the simulated actuator runs simulated replicas only")
        if self.actuator == "ray" and self.backend == "openai":
            raise ValueError(f"pool {self.name!r}: a ray pool runs vllm or simulated replicas in its actors")
        if self.actuator != "ray" and self.ray is not None:
            raise ValueError(f"pool {self.name!r}: 'ray' settings are for pools whose actuator is ray")
        # the template must make a valid replica (a local server's URL is its actuator's to fill in)
        self.template("template-check", **({} if self.replica.get("url") else {"url": "http://127.0.0.1:1/v1"}))
        return self

    def template(self, replica_id: str, **fields: Any) -> ReplicaConfig:
        """The config of one replica of this pool."""
        data = {**self.replica, **fields}
        if self.backend != "openai":
            data.pop("url", None)
        return ReplicaConfig(
            id=replica_id, model=self.model, backend=self.backend, chip=self.chip, cost_per_hour=self.cost_per_hour,
            pool=self.name, **data,
        )
