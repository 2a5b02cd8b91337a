"""Replica settings (the `replicas:` entries of the gateway config)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

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
