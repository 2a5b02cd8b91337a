"""An in-process vLLM engine built from a replica's engine settings.

Blocking (seconds to minutes): the supervisor calls it in a worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backends.engine_env import engine_environment

if TYPE_CHECKING:
    from backends.settings import EngineConfig
    from backends.vllm_supervisor import EngineTelemetry


def build_async_llm(
    cfg: EngineConfig, telemetry: EngineTelemetry, *, model_path: str, served_model: str, **args: Any
) -> Any:
    """vLLM's ``AsyncLLM`` with the settings every runner shares, plus the runner's own ``args``."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    settings: dict[str, Any] = {
        "model": model_path,
        "served_model_name": [served_model],
        "dtype": cfg.dtype,
        "enforce_eager": cfg.enforce_eager,
        "max_num_seqs": cfg.max_num_seqs,
        "seed": cfg.seed,
        # scheduler stats on: the telemetry's stat logger reads running/waiting/KV usage from
        # every step (and replaces vLLM's Prometheus logger, see EngineTelemetry)
        "disable_log_stats": False,
    }
    if cfg.kv_cache_gib is not None:
        settings["kv_cache_memory_bytes"] = int(cfg.kv_cache_gib * (1 << 30))
    if cfg.gpu_memory_utilization is not None:
        settings["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    with engine_environment(cfg.env):
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**settings, **args), stat_loggers=[telemetry.logger_factory()])
