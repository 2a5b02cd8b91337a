"""The one owner of replica lifecycle: build, start, drain, stop, remove.

Every replica lives here: static ones from the config (``replicas:``), pooled ones
started and stopped through their pool's actuator as the fleet plan says, and
ones registered from outside (``POST /admin/replicas``; with ``pool`` set they
join that pool). The registry is the router's view of the same replicas.

States: ``starting -> active -> draining -> stopped``, plus ``standby``. A start
runs in the background (the cold start) and is timed; a retired replica drains
(its in-flight requests finish) before its actuator stops it. Paid time per
replica (every state but stopped) is written as replica-hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from backends.actuators import Actuator, ActuatorError, Started
from backends.settings import PoolConfig, ReplicaConfig
from billing.replica_hours import PaidSpan, ReplicaHours
from gateway.config import GatewayConfig
from gateway.replicas import make_replica
from routing.fleet.pools import PoolStatus
from routing.fleet.reconcile import Action, Member, reconcile
from routing.registry import ReplicaRegistry
from routing.replica import Replica, ReplicaState

log = logging.getLogger("maas.fleet")

#: how long a retired replica may take to finish its requests before it is stopped anyway
DRAIN_TIMEOUT_S = 600.0
_EVENTS = 200


class LifecycleObserver(Protocol):
    """Told about scale events (the gateway's metrics)."""

    def scaled(self, pool: str, chip: str, event: str, reason: str) -> None: ...

    def cold_start(self, pool: str, chip: str, seconds: float) -> None: ...

    def paid(self, model: str, pool: str, chip: str, usd: float) -> None: ...


@dataclass(slots=True)
class _Member:
    replica: Replica
    pool: str | None
    started: Started | None
    heading: ReplicaState
    born: float
    task: asyncio.Task[None] | None = None
    died: float | None = None
    #: (host, pid) of a replica another gateway started and this one follows
    remote: tuple[str, object] | None = None
    #: paid seconds already reported to the observer
    reported_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """One lifecycle change, as logged: when, what, and why."""

    at: float
    pool: str
    replica: str
    event: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"at": self.at, "pool": self.pool, "replica": self.replica, "event": self.event, "reason": self.reason}


@dataclass(slots=True)
class _PoolState:
    config: PoolConfig
    actuator: Actuator
    measured_cold_start_s: float | None = None
    failed_starts: int = 0
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))


class Lifecycle:
    """Replicas and their states, for every pool and for static and registered replicas."""

    def __init__(
        self,
        config: GatewayConfig,
        registry: ReplicaRegistry,
        actuators: Mapping[str, Actuator],
        *,
        hours: ReplicaHours | None = None,
        observer: LifecycleObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self.registry = registry
        self._actuators = dict(actuators)
        self._hours = hours
        self._observer = observer
        self._clock = clock
        self._members: dict[str, _Member] = {}
        self._gone: list[_Member] = []
        self._work: set[asyncio.Task[None]] = set()
        self._accounted_at: float | None = None
        self.pools: dict[str, _PoolState] = {
            p.name: _PoolState(p, self._actuators[p.actuator]) for p in config.pools
        }
        self.events: deque[ScaleEvent] = deque(maxlen=_EVENTS)
        #: told the model of a replica that died, so its capacity is planned again at once
        self.on_lost: Callable[[str], None] | None = None

    # -- static and registered replicas ------------------------------------------------------
    async def start_static(self) -> None:
        """Start the config's static replicas (in parallel); one that fails to start is down, not fatal."""
        members = [self._adopt(make_replica(spec, self._config), pool=None) for spec in self._config.replicas]
        await asyncio.gather(*(self._start_backend(m.replica) for m in members))

    async def register(self, spec: ReplicaConfig) -> Replica:
        """A replica registered from outside; with ``pool`` set it joins that pool."""
        if spec.pool is not None and spec.pool not in self.pools:
            raise ValueError(f"no pool {spec.pool!r}; pools: {', '.join(self.pools) or 'none'}")
        replica = make_replica(spec, self._config)
        await self._start_backend(replica)
        self._adopt(replica, pool=spec.pool)
        if spec.pool is not None:
            self._event(spec.pool, replica.id, "registered", "joined from outside")
        return replica

    def drain(self, replica_id: str) -> Replica:
        return self.registry.drain(replica_id)

    def undrain(self, replica_id: str) -> Replica:
        return self.registry.undrain(replica_id)

    async def remove(self, replica_id: str, *, timeout_s: float = 30.0) -> int:
        """Drain, wait up to ``timeout_s`` for in-flight requests, stop and forget a replica.
        Returns how many requests were still in flight when it was cut."""
        member = self._members.get(replica_id)
        left = await self.registry.remove(replica_id, timeout_s=timeout_s)
        if member is not None:
            await self._release(member)
        return left

    # -- pools -------------------------------------------------------------------------------
    def members(self, pool: str) -> list[Replica]:
        return [m.replica for m in self._members.values() if m.pool == pool]

    def status(self, pool: str) -> PoolStatus:
        """Counts by state, the measured cold start, and how much slower than its profile the pool
        runs (observed / modelled TPOT of its active replicas, from live telemetry)."""
        counts = {state: 0 for state in ReplicaState}
        factors = []
        for member in self._members.values():
            if member.pool == pool:
                counts[member.replica.state] += 1
                factor = member.replica.telemetry.tpot_calibration()
                if factor is not None and member.replica.state is ReplicaState.ACTIVE:
                    factors.append(factor)
        return PoolStatus(
            starting=counts[ReplicaState.STARTING], active=counts[ReplicaState.ACTIVE],
            standby=counts[ReplicaState.STANDBY], draining=counts[ReplicaState.DRAINING],
            measured_cold_start_s=self.pools[pool].measured_cold_start_s,
            calibration=sum(factors) / len(factors) if factors else 1.0,
        )

    def enact(self, pool: str, active: int, standby: int, *, retiring: int = 0, reason: str = "plan") -> list[Action]:
        """Bring ``pool`` to ``active`` + ``standby`` replicas; mark ``retiring`` active ones
        the plan will drain once their replacements serve (routing steers away from them)."""
        state = self.pools[pool]
        members = [
            Member(m.replica.id, m.replica.state, m.heading, m.replica.telemetry.outstanding_sequences())
            for m in self._members.values() if m.pool == pool and m.replica.state is not ReplicaState.DRAINING
        ]
        actions = reconcile(members, active, standby)
        for action in actions:
            if action.kind == "start":
                if state.actuator.discovers:
                    continue  # external: the published desired count is the request
                self._start_new(state, action.heading, reason)
                continue
            member = self._members[action.replica]  # type: ignore[index]
            if action.kind == "wake":
                member.heading = ReplicaState.ACTIVE
                member.replica.state = ReplicaState.ACTIVE
            elif action.kind == "park":
                member.heading = ReplicaState.STANDBY
                member.replica.state = ReplicaState.STANDBY
            elif action.kind == "cancel":
                self._spawn(self._cancel(member))
            else:
                member.replica.state = ReplicaState.DRAINING
                if not state.actuator.discovers:
                    self._spawn(self._retire(member))
            self._event(pool, member.replica.id, action.kind, reason)
        self._mark_retiring(pool, retiring)
        return actions

    def _mark_retiring(self, pool: str, count: int) -> None:
        active = sorted(
            (m.replica for m in self._members.values() if m.pool == pool and m.replica.state is ReplicaState.ACTIVE),
            key=lambda r: (r.telemetry.outstanding_sequences(), r.id),
        )
        for i, replica in enumerate(active):
            replica.retiring = i < count

    def _start_new(self, state: _PoolState, heading: ReplicaState, reason: str) -> None:
        pool = state.config
        replica_id = next(f"{pool.name}-{n}" for n in state.ids if self.registry.get(f"{pool.name}-{n}") is None)
        started = state.actuator.build(pool, replica_id)
        replica = make_replica(started.spec, self._config, backend=started.backend)
        replica.state = ReplicaState.STARTING
        member = self._adopt(replica, pool=pool.name, started=started, heading=heading)
        member.task = self._spawn(self._bring_up(state, member))
        self._event(pool.name, replica_id, "start", reason)

    async def _bring_up(self, state: _PoolState, member: _Member) -> None:
        began = time.monotonic()
        assert member.started is not None
        try:
            await state.actuator.start(member.started)
        except ActuatorError as exc:
            state.failed_starts += 1
            log.error("fleet: pool %s: %s", state.config.name, exc)
            self._event(state.config.name, member.replica.id, "start_failed", str(exc)[:200])
            await self._stop_and_forget(member)
            return
        seconds = time.monotonic() - began
        state.measured_cold_start_s = seconds
        if self._observer is not None:
            self._observer.cold_start(state.config.name, state.config.chip, seconds)
        member.replica.state = member.heading
        self._event(state.config.name, member.replica.id, "ready", f"cold start {seconds:.1f}s")
        lost = member.started.lost
        if lost is not None:
            lost.add_done_callback(lambda done: self._spawn(self._lose(member, done.result())))

    async def _lose(self, member: _Member, reason: str) -> None:
        """A running replica died (its node, process or card): out of routing now, its capacity replanned.
        In-flight requests end with the backend's close; those that had not started streaming fail over."""
        if self._members.get(member.replica.id) is not member:
            return  # already stopped or retired
        assert member.pool is not None
        self._event(member.pool, member.replica.id, "lost", reason[:200])
        if self._observer is not None:  # the metric's reason stays one word: Ray's message is per replica
            self._observer.scaled(member.pool, member.replica.chip, "lost", "died")
        await self._stop_and_forget(member)
        if self.on_lost is not None:
            self.on_lost(member.replica.model)

    async def _cancel(self, member: _Member) -> None:
        if member.task is not None and not member.task.done():
            member.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await member.task
        await self._stop_and_forget(member)

    async def _retire(self, member: _Member) -> None:
        await self.registry.remove(member.replica.id, timeout_s=DRAIN_TIMEOUT_S)
        await self._release(member)

    async def _stop_and_forget(self, member: _Member) -> None:
        self.registry.remove_now(member.replica.id)
        await self._release(member)

    async def _release(self, member: _Member) -> None:
        """Stop the replica's backend (through its actuator) and close its paid time."""
        member.replica.state = ReplicaState.STOPPED
        if self._members.pop(member.replica.id, None) is None:
            return
        member.died = self._clock()
        self._gone.append(member)
        try:
            if member.started is not None:
                await self._actuators[member.started.pool.actuator].stop(member.started)
            else:
                await member.replica.backend.close()
                _stop_orphan(member.remote)
        except Exception:  # noqa: BLE001 - a replica that fails to stop cleanly is gone all the same
            log.exception("fleet: stopping replica %s failed", member.replica.id)
        if member.pool is not None:
            self._event(member.pool, member.replica.id, "stopped", "")

    # -- several gateways ------------------------------------------------------------------------
    def shareable(self) -> list[dict[str, object]]:
        """Pool replicas other gateways can reach (a URL), for them to route to while following."""
        out = []
        for m in self._members.values():
            spec = m.started.spec if m.started is not None else None
            if m.pool is None or spec is None or spec.url is None:
                continue
            out.append({
                "id": m.replica.id, "pool": m.pool, "url": spec.url, "state": m.replica.state.value,
                "retiring": m.replica.retiring, "host": socket.gethostname(),
                "pid": self._actuators[m.started.pool.actuator].pid(spec.id),  # type: ignore[union-attr]
            })
        return out

    async def follow(self, published: list[dict[str, object]] | None) -> None:
        """Mirror the leader's shared replicas: register new ones, follow their states, drop gone ones."""
        if published is None:
            return
        seen = set()
        for item in published:
            replica_id, pool = str(item["id"]), str(item["pool"])
            if pool not in self.pools:
                continue
            seen.add(replica_id)
            member = self._members.get(replica_id)
            if member is None:
                spec = self.pools[pool].config.template(replica_id, url=str(item["url"]))
                replica = make_replica(spec.model_copy(update={"backend": "openai"}), self._config)
                await self._start_backend(replica)
                member = self._adopt(replica, pool=pool)
                member.remote = (str(item.get("host") or ""), item.get("pid"))  # type: ignore[assignment]
            if member.started is None:
                member.replica.state = ReplicaState(str(item["state"]))
                member.replica.retiring = bool(item.get("retiring"))
        for member in [m for m in self._members.values() if m.remote is not None and m.replica.id not in seen]:
            self.registry.remove_now(member.replica.id)
            self._members.pop(member.replica.id, None)
            await member.replica.backend.close()

    # -- bookkeeping ---------------------------------------------------------------------------
    def _adopt(
        self, replica: Replica, *, pool: str | None, started: Started | None = None,
        heading: ReplicaState = ReplicaState.ACTIVE,
    ) -> _Member:
        member = _Member(replica, pool, started, heading, born=self._clock())
        self._members[replica.id] = member
        self.registry.add(replica)
        return member

    @staticmethod
    async def _start_backend(replica: Replica) -> None:
        try:
            await replica.backend.start()
        except Exception as exc:  # noqa: BLE001 - a replica that fails to start is down, not fatal
            log.error("replica %s failed to start: %s", replica.id, exc)
            for _ in range(replica.breaker.failure_threshold):
                replica.breaker.record_failure()

    def _spawn(self, work: object) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def settled(self) -> None:
        """Return once every start, drain and stop under way has finished."""
        while self._work:
            await asyncio.gather(*list(self._work), return_exceptions=True)

    def _event(self, pool: str, replica: str, event: str, reason: str) -> None:
        self.events.append(ScaleEvent(self._clock(), pool, replica, event, reason))
        log.info("fleet: pool=%s replica=%s %s %s", pool, replica, event, reason)
        if self._observer is not None and event in ("start", "wake", "park", "cancel", "retire", "registered"):
            chip = self.pools[pool].config.chip if pool in self.pools else ""
            self._observer.scaled(pool, chip, event, reason)

    def cost_per_hour(self) -> Decimal:
        """What the replicas cost now: every replica in any state but stopped."""
        return sum((m.replica.cost_per_hour for m in self._members.values()), Decimal(0))

    async def account(self) -> None:
        """Write paid replica time since the last call (replica-hours)."""
        now = self._clock()
        members = [*self._members.values(), *self._gone]
        spans = [self._span(m, now) for m in members]
        since_hour = None if self._accounted_at is None else int(self._accounted_at // 3600)
        if self._hours is not None and spans:
            await self._hours.record(spans, since_hour=since_hour)
        if self._observer is not None:
            for member, span in zip(members, spans):
                seconds = span.until - span.since
                if seconds > member.reported_s and member.remote is None:
                    usd = float(span.cost_per_hour) * (seconds - member.reported_s) / 3600
                    self._observer.paid(span.model, member.pool or "static", span.chip, usd)
                    member.reported_s = seconds
        self._gone.clear()
        self._accounted_at = now

    @staticmethod
    def _span(member: _Member, now: float) -> PaidSpan:
        r = member.replica
        return PaidSpan(r.id, r.model, member.pool, r.chip, r.cost_per_hour, member.born, member.died or now)

    async def close(self) -> None:
        """Stop every replica (in-flight requests end) and the actuators."""
        for task in list(self._work):
            task.cancel()
        await asyncio.gather(*list(self._work), return_exceptions=True)
        await asyncio.gather(*(self._release(m) for m in list(self._members.values())), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.account()
        for actuator in self._actuators.values():
            await actuator.close()


def _stop_orphan(remote: tuple[str, object] | None) -> None:
    """A local server process a gateway that died had started: this gateway now ends it."""
    if remote is None:
        return
    host, pid = remote
    if host == socket.gethostname() and isinstance(pid, int):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
