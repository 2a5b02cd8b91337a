"""What every in-process vLLM replica shares: how its engine is built and its lifecycle.

The chat runner (:mod:`backends.vllm_engine`) and the pooling runner
(:mod:`backends.vllm_embedding`) differ in their request path only: both build an
``AsyncLLM`` from the replica's engine settings (blocking, seconds to minutes: the
supervisor calls it in a worker thread) and are started, watched, restarted and
reported on by one :class:`EngineSupervisor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from backends.base import EngineStats
from backends.engine_env import engine_environment
from backends.vllm_supervisor import EngineSupervisor, EngineTelemetry, RestartBackoff

if TYPE_CHECKING:
    from backends.settings import EngineConfig


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


class SupervisedVllmReplica:
    """The lifecycle half of an in-process vLLM replica; subclasses add ``_build_engine`` and the request path.

    ``_open_requests()`` says whether the subclass has requests open: the engine reports
    its scheduler stats on steps only, so after the last request ends on an idle engine
    its last report is stale, and the replica reports zeros instead.
    """

    def __init__(
        self,
        replica_id: str,
        served_model: str,
        engine: EngineConfig,
        *,
        model_path: str,
        on_death: Callable[[Any], None] | None = None,
    ) -> None:
        self.replica_id = replica_id
        self.served_model = served_model
        self.engine_config = engine
        self.model_path = model_path
        self._telemetry = EngineTelemetry()
        self._supervisor = EngineSupervisor(
            replica_id,
            self._build_engine,
            backoff=RestartBackoff(engine.restart_backoff_s, engine.restart_backoff_max_s),
            telemetry=self._telemetry,
            on_death=on_death,
        )
        self._context_length: int | None = None  # the engine's max_model_len, once one was built

    def _build_engine(self) -> Any:  # pragma: no cover - every runner defines it
        raise NotImplementedError

    def _open_requests(self) -> bool:  # pragma: no cover - every runner defines it
        raise NotImplementedError

    def _build(self, **args: Any) -> Any:
        """``build_async_llm`` for this replica; remembers the engine's context window."""
        engine = build_async_llm(
            self.engine_config, self._telemetry, model_path=self.model_path, served_model=self.served_model, **args
        )
        self._context_length = engine.model_config.max_model_len
        return engine

    async def start(self) -> None:
        """Build the engine (in a thread: ~40 s on CPU) and return when it serves."""
        await self._supervisor.start()

    async def close(self) -> None:
        """Shut the engine down; in-flight requests end with ReplicaUnavailable."""
        await self._supervisor.close()

    async def health(self) -> bool:
        return self._supervisor.ready

    def stats(self) -> EngineStats:
        """Scheduler stats of the engine's last step; zeros when nothing is open."""
        if not self._supervisor.ready:
            return EngineStats()
        if not self._open_requests():
            return EngineStats(running=0, waiting=0, kv_cache_usage=0.0)
        return self._telemetry.snapshot()

    def context_length(self) -> int | None:
        """The engine's context window (its ``max_model_len``), None until an engine was built."""
        return self._context_length

    def engine_pid(self) -> int | None:
        """PID of the engine-core process (None while no engine runs)."""
        return self._supervisor.engine_pid()

    @property
    def supervisor(self) -> EngineSupervisor:
        return self._supervisor
