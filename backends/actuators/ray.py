"""Replicas on a Ray cluster: each one a Ray actor placed by its chip's resources.

The gateway joins the cluster as a Ray driver (``ray:`` ``address`` of the pool:
``auto``, the head's ``host:port``, or ``ray://`` for Ray Client) and starts one
``ReplicaActor`` per replica, asking for the chip's resources
(``backends.actuators.ray_placement``). Inside, the gateway's own app serves the
one replica (an in-process vLLM engine or a simulated chip) over the OpenAI
protocol; the gateway reaches it with the ``openai`` backend, so streaming,
timeouts, error mapping and failover are those of any upstream and nothing
blocks the event loop (blocking Ray calls run in a thread, results are awaited).

A replica's death is seen through a liveness call kept pending on its actor:
Ray fails it when the actor, its worker process or its node dies, which resolves
``Started.lost`` and lets the lifecycle eject the replica at once (about 2 s after
a raylet was killed, in the tests: its workers exit, and the call fails). A node
that vanishes with its processes still running is declared dead by the head's
health checks (``health_check_period_ms`` x ``health_check_failure_threshold``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import ray
from ray.exceptions import RayError

from backends.actuators.base import ActuatorError, ModelFacts, Started
from backends.actuators.ray_actor import ReplicaActor, ServeReplica
from backends.actuators.ray_backend import ActorBackend
from backends.actuators.ray_placement import RayPlacement, placement_for
from backends.chips import CHIPS
from backends.settings import PoolConfig, RayPoolSettings

log = logging.getLogger("maas.fleet.ray")

#: how long a start may take at least (placement, a worker process, the engine's load)
_MIN_START_TIMEOUT_S = 120.0
#: how long a retired replica's actor may take to stop its server and engine before it is killed
_STOP_GRACE_S = 30.0
#: sessions a gateway asks the cluster for before a start fails (only when the cluster answered and aborted)
_CONNECT_ATTEMPTS = 3
_CONNECT_RETRY_PAUSE_S = 1.0
T = TypeVar("T")


@dataclass(slots=True)
class RayReplica:
    """A replica's actor (being created, then its handle) and where it runs."""

    actor: asyncio.Future[Any]
    node_id: str | None = None
    node_ip: str | None = None
    url: str | None = None
    #: the pending liveness call (held: a ref nobody holds may be released before it resolves)
    liveness: Any = None
    #: set before a stop, so that the end of the liveness call is not taken for a death
    stopping: bool = False


class RayActuator:
    kind = "ray"
    discovers = False

    def __init__(self, serve: ServeReplica, models: ModelFacts | None = None) -> None:
        self._serve = serve
        self._models = models or ModelFacts()
        self._replicas: dict[str, RayReplica] = {}
        self._cluster: tuple[str, str] | None = None
        self._owns_connection = False
        self._connecting = asyncio.Lock()
        self._actor_class: Any = None

    # -- the protocol --------------------------------------------------------------------------
    def build(self, pool: PoolConfig, replica_id: str) -> Started:
        spec = pool.template(replica_id)
        # each replica's server accepts only its own random key: the gateway is its one client
        return Started(spec, ActorBackend(spec, token=secrets.token_urlsafe(32)), pool)

    async def start(self, started: Started) -> None:
        pool, spec = started.pool, started.spec
        settings = pool.ray or RayPoolSettings()
        placement = placement_for(pool.chip, settings)
        await self._connect(settings)
        await self._check_offered(pool, placement)
        began = time.monotonic()
        options = {**placement.actor_options(), "max_restarts": 0, "runtime_env": settings.runtime_env}
        replica = self._replicas[spec.id] = RayReplica(asyncio.ensure_future(
            _off_loop(lambda: self._actor().options(**options).remote(spec.id))))
        # shielded: a start called off meanwhile still gets the actor, for ``stop`` to kill
        actor = await asyncio.shield(replica.actor)
        timeout = settings.start_timeout_s or max(_MIN_START_TIMEOUT_S, 5 * _cold_start_s(pool))
        backend: ActorBackend = started.backend  # type: ignore[assignment]
        try:
            async with asyncio.timeout(timeout):
                info = await await_ref(actor.serve, self._serve, spec.model_dump(mode="json"), backend.token,
                                       self._models.max_model_len.get(spec.model))
        except TimeoutError:
            raise ActuatorError(
                f"replica {spec.id}: not serving after {timeout:.0f}s (still waiting for a node with "
                f"{_describe(placement.required())} to have room, or its engine is still loading)"
            ) from None
        except RayError as exc:
            raise ActuatorError(f"replica {spec.id} failed to start on Ray: {_reason(exc)}") from exc
        replica.node_id, replica.node_ip, replica.url = info["node_id"], info["node_ip"], info["url"]
        await backend.connect(info["url"])
        log.info("ray: replica %s serving at %s on node %s (%s) after %.1fs", spec.id, info["url"],
                 info["node_id"][:12], info["node_ip"], time.monotonic() - began)
        started.lost = asyncio.get_running_loop().create_future()
        replica.liveness = await _off_loop(actor.until_stopped.remote)
        _watch(replica.liveness, replica, started.lost)
        if spec.backend == "simulated":
            # the engine load the double does not run, waited like the simulated actuator's
            await asyncio.sleep(_cold_start_s(pool) * spec.time_scale)

    async def stop(self, started: Started) -> None:
        await started.backend.close()
        replica = self._replicas.pop(started.spec.id, None)
        if replica is None:
            return
        replica.stopping = True
        try:
            actor = await replica.actor
        except Exception:  # noqa: BLE001 - never created: nothing to stop
            return
        if replica.node_id is not None:  # it served: let it stop its server and engine cleanly first
            with contextlib.suppress(RayError, TimeoutError):
                async with asyncio.timeout(_STOP_GRACE_S):
                    await await_ref(actor.stop)
        await _kill(actor)

    def pid(self, replica_id: str) -> int | None:
        return None  # the process runs on a Ray node, not here

    def where(self, replica_id: str) -> RayReplica | None:
        """The actor and node of a replica this actuator started (None once stopped)."""
        return self._replicas.get(replica_id)

    async def close(self) -> None:
        replicas, self._replicas = list(self._replicas.values()), {}
        for replica in replicas:
            replica.stopping = True
        created = await asyncio.gather(*(r.actor for r in replicas), return_exceptions=True)
        await asyncio.gather(*(_kill(actor) for actor in created if not isinstance(actor, BaseException)))
        if self._owns_connection:
            await asyncio.to_thread(ray.shutdown)
            self._owns_connection = False
            self._cluster = None

    # -- the cluster ---------------------------------------------------------------------------
    async def _connect(self, settings: RayPoolSettings) -> None:
        """Join the pool's cluster once; every ray pool of a gateway must name the same one."""
        wanted = (settings.address, settings.namespace)
        async with self._connecting:
            if self._cluster is not None:
                if self._cluster != wanted:
                    raise ActuatorError(
                        f"a gateway drives one Ray cluster: it is connected to {self._cluster[0]} (namespace "
                        f"{self._cluster[1]}), a pool asks for {wanted[0]} (namespace {wanted[1]})"
                    )
                return
            if ray.is_initialized():
                # this process already is a driver (an application embedding the gateway, the tests)
                self._cluster = wanted
                return
            for attempt in range(1, _CONNECT_ATTEMPTS + 1):
                try:
                    await asyncio.to_thread(
                        ray.init, address=settings.address, namespace=settings.namespace, log_to_driver=False,
                        logging_level=logging.WARNING, ignore_reinit_error=True,
                    )
                    break
                except Exception as exc:  # ConnectionError, RuntimeError, ...: all mean "not connected"
                    reason = _reason(exc)
                    # reached, but the session failed to open: Ray Client's server starts a process per
                    # client, which can miss its 30 s to come up on a busy head; another try usually works
                    if not isinstance(exc, ConnectionAbortedError) or attempt == _CONNECT_ATTEMPTS:
                        raise ActuatorError(f"cannot connect to the Ray cluster at {settings.address}: {reason}") from exc
                    log.warning("ray: the cluster at %s could not open a session (%s); trying again (%d of %d)",
                                settings.address, reason, attempt + 1, _CONNECT_ATTEMPTS)
                    await asyncio.sleep(_CONNECT_RETRY_PAUSE_S)
            self._cluster, self._owns_connection = wanted, True

    @staticmethod
    async def _check_offered(pool: PoolConfig, placement: RayPlacement) -> None:
        """Fail at once when no node offers the chip at all (Ray would queue the actor forever)."""
        total = await asyncio.to_thread(ray.cluster_resources)
        missing = {name: amount for name, amount in placement.required().items() if total.get(name, 0.0) < amount}
        if missing:
            raise ActuatorError(
                f"pool {pool.name}: no node of the Ray cluster offers {_describe(missing)} for chip {pool.chip} "
                "(start nodes with it, e.g. ray start --resources='{\"chip:NAME\": 1}', or set ray.resources)"
            )

    def _actor(self) -> Any:
        if self._actor_class is None:
            self._actor_class = ray.remote(ReplicaActor)
        return self._actor_class


def _watch(pending: Any, replica: RayReplica, lost: asyncio.Future[str]) -> None:
    """Resolve ``lost`` when the liveness call fails: the replica's death (not its stop, which ends the call)."""
    loop = lost.get_loop()

    def ended(result: concurrent.futures.Future[Any]) -> None:  # in Ray's thread
        if replica.stopping or result.cancelled() or result.exception() is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the gateway stopped meanwhile
            loop.call_soon_threadsafe(_resolve, lost, _reason(result.exception()))  # type: ignore[arg-type]

    pending.future().add_done_callback(ended)


def _resolve(lost: asyncio.Future[str], reason: str) -> None:
    if not lost.done():
        lost.set_result(reason)


async def await_ref(method: Any, *args: Any) -> Any:
    """Call an actor method and await its result on this event loop.

    Shielded: a cancelled wait (a start called off) must not cancel Ray's own future,
    which Ray Client then fails to complete in its own thread.
    """
    ref = await _off_loop(lambda: method.remote(*args))
    result = asyncio.wrap_future(ref.future())
    result.add_done_callback(_consume)
    return await asyncio.shield(result)


def _consume(result: asyncio.Future[Any]) -> None:
    """Retrieve an outcome nobody awaits any more (a shielded wait was cancelled), so it is not logged as lost."""
    if not result.cancelled():
        result.exception()


async def _off_loop(call: Callable[[], T]) -> T:
    """A Ray call that may block on a round trip (submission, Ray Client): run it in a thread."""
    return await asyncio.to_thread(call)


async def _kill(actor: Any) -> None:
    with contextlib.suppress(RayError, ValueError):
        await asyncio.to_thread(ray.kill, actor, no_restart=True)


def _cold_start_s(pool: PoolConfig) -> float:
    if pool.cold_start_s is not None:
        return pool.cold_start_s
    profile = CHIPS.get(pool.chip)
    return profile.cold_start_s if profile is not None else 60.0


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{name}: {amount:g}" for name, amount in sorted(resources.items()))


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError carries what was raised inside the actor
    if isinstance(cause, BaseException):
        exc = cause
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:  # "Initialization failure from server:" + a traceback: its last line
        text = f"{text} {lines[-1]}"
    return text[:300]
