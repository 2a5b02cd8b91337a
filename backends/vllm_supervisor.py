"""Supervision of an in-process vLLM engine: start it off the event loop, notice
at once when its engine-core process dies ("a card falls off the bus"), fail the
requests it was serving, and restart it in the background with exponential backoff.

vLLM runs the scheduler and model in an engine-core subprocess (plus a worker
process on CPU); the ``AsyncLLM`` object in this process is the client. A dead
engine-core process is seen through its process sentinel, without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from backends.base import EngineStats, ReplicaUnavailable

log = logging.getLogger(__name__)

#: how often the watcher also checks vLLM's own "errored" flag (output loop crashed)
_ERRORED_CHECK_S = 1.0
#: seconds to let a dead engine's processes go before killing them
_SHUTDOWN_TIMEOUT_S = 5.0


class EngineTelemetry:
    """Latest scheduler stats of the engine, written by vLLM's stat-logger hook.

    Reading is a field access (never blocks). ``logger_factory()`` is what
    ``AsyncLLM(stat_loggers=[...])`` takes.
    """

    def __init__(self) -> None:
        self.running: int | None = None
        self.waiting: int | None = None
        self.kv_cache_usage: float | None = None
        self.updated_at: float | None = None

    def record(
        self, scheduler_stats: Any, iteration_stats: Any = None, mm_cache_stats: Any = None, engine_idx: int = 0
    ) -> None:
        if scheduler_stats is None:
            return
        self.running = scheduler_stats.num_running_reqs
        self.waiting = scheduler_stats.num_waiting_reqs + getattr(scheduler_stats, "num_skipped_waiting_reqs", 0)
        self.kv_cache_usage = scheduler_stats.kv_cache_usage
        self.updated_at = time.monotonic()

    def clear(self) -> None:
        self.running = self.waiting = self.kv_cache_usage = self.updated_at = None

    def snapshot(self) -> EngineStats:
        return EngineStats(running=self.running, waiting=self.waiting, kv_cache_usage=self.kv_cache_usage)

    def logger_factory(self) -> Any:
        """The stat logger to hand to ``AsyncLLM(stat_loggers=[...])``.

        With vLLM importable, it stands in for vLLM's own Prometheus logger, which
        vLLM adds unless one is given: that logger fills the process-global
        registry (the gateway serves its own) and, measured under load, took a
        third of the event loop's time in ``Histogram.observe``.
        """
        telemetry = self
        try:
            from vllm.v1.metrics.loggers import PrometheusStatLogger
        except ImportError:
            PrometheusStatLogger = None

        class _TelemetryStatLogger(*((PrometheusStatLogger,) if PrometheusStatLogger else ())):  # type: ignore[misc]
            # Subclassing is only for vLLM's "custom Prometheus logger given"
            # check; none of the parent's metrics are created.
            def __init__(self, vllm_config: Any = None, engine_indexes: Any = None) -> None:
                self.engine_indexes = engine_indexes

            def record(
                self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0
            ) -> None:
                telemetry.record(scheduler_stats, iteration_stats, mm_cache_stats, engine_idx)

            def record_admission_rejection(self, reason: str) -> None:
                pass

            def record_sleep_state(self, is_awake: int = 0, level: int = 0) -> None:
                pass

            def log_engine_initialized(self) -> None:
                pass

            def log(self) -> None:
                pass

        return _TelemetryStatLogger


class RestartBackoff:
    """Exponential backoff between restarts: ``base * 2**k`` capped at ``cap``.

    A crash soon after a restart (engine up less than ``cap`` seconds) keeps
    climbing the ladder, so a crash-looping engine is not restarted flat out.
    """

    def __init__(self, base_s: float, cap_s: float) -> None:
        self.base_s = base_s
        self.cap_s = max(cap_s, base_s)
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.base_s * (2 ** min(self.failures, 32)), self.cap_s)
        self.failures += 1
        return delay

    def engine_died(self, uptime_s: float) -> None:
        if uptime_s >= self.cap_s:
            self.failures = 0


class EngineSupervisor:
    """Owns one ``AsyncLLM`` for a replica: start, watch, restart, close.

    ``build`` constructs the engine (blocking, ~40 s on CPU); it runs in a thread
    so the event loop keeps serving. ``on_death`` is told when an engine dies,
    before the restart begins, so the backend can fail its in-flight requests.
    """

    def __init__(
        self,
        replica_id: str,
        build: Callable[[], Any],
        *,
        backoff: RestartBackoff,
        telemetry: EngineTelemetry,
        on_death: Callable[[Any], None] | None = None,
    ) -> None:
        self.replica_id = replica_id
        self._build = build
        self._backoff = backoff
        self._telemetry = telemetry
        self._on_death = on_death
        self._engine: Any = None
        self._children: list[Any] = []
        self._ready_at = 0.0
        self._state = "stopped"  # stopped | starting | ready | restarting | closed
        self._watcher: asyncio.Task[None] | None = None
        self._restarter: asyncio.Task[None] | None = None
        self._next_attempt_at: float | None = None
        self.last_start_s: float | None = None
        self.restarts = 0

    @property
    def state(self) -> str:
        return self._state

    @property
    def ready(self) -> bool:
        engine = self._engine
        return self._state == "ready" and engine is not None and not engine.errored

    def current(self) -> Any:
        """The serving engine, or ReplicaUnavailable (with a retry hint) if there is none."""
        engine = self._engine
        if self._state == "ready" and engine is not None and not engine.errored:
            return engine
        if self._state == "restarting":
            wait = (self.last_start_s or 60.0) + max(0.0, (self._next_attempt_at or 0.0) - time.monotonic())
            raise ReplicaUnavailable(
                f"replica {self.replica_id}: the vLLM engine died and is restarting", retry_after=round(wait, 1)
            )
        if self._state == "closed":
            raise ReplicaUnavailable(f"replica {self.replica_id}: the vLLM engine is shut down")
        raise ReplicaUnavailable(f"replica {self.replica_id}: the vLLM engine is not started ({self._state})")

    def is_current(self, engine: Any) -> bool:
        return engine is self._engine and self._state == "ready"

    def engine_pid(self) -> int | None:
        """PID of the engine-core process, or None when no engine runs."""
        proc = _core_process(self._engine) if self._engine is not None else None
        return proc.pid if proc is not None else None

    async def start(self) -> None:
        """Start the engine and return when it is ready (raises if it cannot start)."""
        if self._state in ("ready", "starting"):
            return
        if self._state == "closed":
            raise ReplicaUnavailable(f"replica {self.replica_id}: closed")
        self._state = "starting"
        try:
            await self._launch()
        except BaseException:
            if self._state == "starting":
                self._state = "stopped"
            raise

    async def close(self) -> None:
        """Stop watching and restarting, and shut the engine down."""
        self._state = "closed"
        for task in (self._watcher, self._restarter):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        engine, self._engine = self._engine, None
        self._telemetry.clear()
        if engine is not None:
            if self._on_death is not None:
                self._on_death(engine)
            # Stop vLLM's output loop first: otherwise it logs the orderly
            # shutdown as an "engine dead" error.
            handler = getattr(engine, "output_handler", None)
            if handler is not None:
                handler.cancel()
            await asyncio.to_thread(_shutdown_quietly, engine, self._children)

    # ---- internals -----------------------------------------------------------

    async def _launch(self) -> None:
        began = time.monotonic()
        building = asyncio.get_running_loop().run_in_executor(None, self._build)
        try:
            engine = await asyncio.shield(building)
        except asyncio.CancelledError:
            # The thread cannot be stopped; shut down whatever it builds.
            building.add_done_callback(_discard_built_engine)
            raise
        except Exception as exc:
            raise ReplicaUnavailable(
                f"replica {self.replica_id}: the vLLM engine failed to start: {type(exc).__name__}: {exc}"
            ) from exc
        children = await asyncio.to_thread(_descendants, engine)
        if self._state == "closed":  # closed while the engine was being built
            await asyncio.to_thread(_shutdown_quietly, engine, children)
            raise ReplicaUnavailable(f"replica {self.replica_id}: closed while starting")
        self.last_start_s = time.monotonic() - began
        self._engine = engine
        self._children = children
        self._ready_at = time.monotonic()
        self._state = "ready"
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch(engine), name=f"vllm-watch-{self.replica_id}"
        )
        log.info(
            "replica %s: vLLM engine ready in %.1fs (engine core pid %s)",
            self.replica_id,
            self.last_start_s,
            self.engine_pid(),
        )

    async def _watch(self, engine: Any) -> None:
        loop = asyncio.get_running_loop()
        died: asyncio.Future[None] = loop.create_future()
        proc = _core_process(engine)
        sentinel = getattr(proc, "sentinel", None)
        if sentinel is not None:
            loop.add_reader(sentinel, lambda: died.done() or died.set_result(None))
        try:
            while not died.done() and not engine.errored:
                await asyncio.wait([died], timeout=_ERRORED_CHECK_S)
        finally:
            if sentinel is not None:
                loop.remove_reader(sentinel)
        if self._engine is engine and self._state == "ready":
            self._engine_died(engine)

    def _engine_died(self, engine: Any) -> None:
        uptime = time.monotonic() - self._ready_at
        log.error("replica %s: vLLM engine core died after %.1fs up; restarting", self.replica_id, uptime)
        self._state = "restarting"
        self._engine = None
        self._telemetry.clear()
        self._backoff.engine_died(uptime)
        if self._on_death is not None:
            self._on_death(engine)
        children, self._children = self._children, []
        self._restarter = asyncio.get_running_loop().create_task(
            self._restart(engine, children), name=f"vllm-restart-{self.replica_id}"
        )

    async def _restart(self, dead: Any, children: list[Any]) -> None:
        await asyncio.to_thread(_shutdown_quietly, dead, children)
        while self._state == "restarting":
            delay = self._backoff.next_delay()
            self._next_attempt_at = time.monotonic() + delay
            await asyncio.sleep(delay)
            if self._state != "restarting":
                return
            try:
                await self._launch()
            except Exception as exc:  # noqa: BLE001 - keep trying: the card may come back
                log.error(
                    "replica %s: engine restart failed (%s); next try in %.1fs",
                    self.replica_id,
                    exc,
                    min(self._backoff.base_s * 2**self._backoff.failures, self._backoff.cap_s),
                )
                continue
            self.restarts += 1
            return


def _discard_built_engine(building: asyncio.Future[Any]) -> None:
    if building.cancelled() or building.exception() is not None:
        return
    engine = building.result()
    threading.Thread(target=_shutdown_quietly, args=(engine, _descendants(engine)), daemon=True).start()


def _core_process(engine: Any) -> Any:
    """The engine-core subprocess of an AsyncLLM (vLLM internals, guarded)."""
    try:
        processes = engine.engine_core.resources.engine_manager.processes
    except AttributeError:
        return None
    return processes[0] if processes else None


def _descendants(engine: Any) -> list[Any]:
    """The engine core's child processes (workers), to clean up if the core dies."""
    proc = _core_process(engine)
    if proc is None or proc.pid is None:
        return []
    import psutil

    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []


def _shutdown_quietly(engine: Any, leftovers: list[Any]) -> None:
    """Shut an engine down; kill what is left of its processes (blocking)."""
    try:
        engine.shutdown(timeout=_SHUTDOWN_TIMEOUT_S)
    except TypeError:  # older vLLM: shutdown() takes no timeout
        engine.shutdown()
    except Exception as exc:  # noqa: BLE001 - a dying engine may fail its own shutdown
        log.warning("vLLM engine shutdown raised %s", exc)
    import psutil

    # Workers of a killed engine core are orphaned; they would hold the model's
    # memory (on a GPU: the card) and block the restart.
    _gone, alive = psutil.wait_procs(leftovers, timeout=_SHUTDOWN_TIMEOUT_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
