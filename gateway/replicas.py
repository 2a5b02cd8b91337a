"""Building a routable replica from its config entry (backend constructed, not started)."""

from __future__ import annotations

from backends.base import Backend
from backends.factory import build_backend, profile_for
from gateway.config import GatewayConfig, ReplicaConfig
from routing.breaker import CircuitBreaker
from routing.replica import Replica
from routing.telemetry import ReplicaTelemetry


def make_replica(spec: ReplicaConfig, config: GatewayConfig, *, backend: Backend | None = None) -> Replica:
    """A routable replica (backend constructed, not started) from its config; ``backend`` when
    an actuator built it already."""
    profile = profile_for(spec.chip)
    if profile is not None and spec.backend == "simulated":
        # the router predicts what the double will really do: its timings run time_scale as long
        profile = profile.scaled(spec.time_scale)
    model = config.model_by_name(spec.model)
    cost = spec.cost_per_hour
    if cost is None:
        if profile is None:
            raise ValueError(f"replica {spec.id}: set cost_per_hour (chip {spec.chip!r} has no default)")
        cost = profile.cost_per_hour
    return Replica(
        spec.id,
        spec.model,
        spec.chip,
        cost,
        backend if backend is not None else build_backend(
            spec,
            max_model_len=model.max_model_len if model else None,
            embedding=model is not None and model.kind == "embedding",
        ),
        profile=profile,
        simulated=spec.backend == "simulated",
        telemetry=ReplicaTelemetry(alpha=config.routing.ewma_alpha),
        breaker=CircuitBreaker(config.routing.breaker_failures, config.routing.breaker_cooldown_s),
    )
