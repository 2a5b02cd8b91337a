"""Pools as the planner sees them: what one replica of a pool costs and serves.

A pool is one chip kind (and backend) of one model: a replica template with a
$/hour, ``min``/``max`` counts and a cold start. :class:`PoolStatus` is what the
lifecycle reports about it now. :func:`slo_capacity` is how many requests/s one
replica sustains within the SLO at a token mix: the efficient operating point of
``routing.capacity`` (one capacity model for the router and the planner), with the
profile's step times corrected by live telemetry.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from routing.capacity import OperatingPoint, efficient_point
from routing.replica import PerformanceProfile
from routing.settings import SLO


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One pool of a model: chip, price, bounds and the configured cold start.

    ``capacity_rps`` is the SLO capacity of one replica for pools without a
    profile (an external endpoint measured by hand); ignored when a profile exists.
    """

    name: str
    model: str
    chip: str
    cost_per_hour: Decimal
    min_replicas: int
    max_replicas: int
    cold_start_s: float
    profile: PerformanceProfile | None
    capacity_rps: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"pool {self.name!r}: need 0 <= min_replicas <= max_replicas")
        if self.cold_start_s < 0:
            raise ValueError(f"pool {self.name!r}: cold_start_s must be >= 0")
        if self.cost_per_hour < 0:
            raise ValueError(f"pool {self.name!r}: cost_per_hour must be >= 0")


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """What runs in a pool now, by lifecycle state, and what telemetry learned.

    ``calibration`` multiplies the profile's step times (observed / predicted
    TPOT); ``measured_cold_start_s`` replaces the configured cold start once a
    start has been timed.
    """

    starting: int = 0
    active: int = 0
    standby: int = 0
    draining: int = 0
    measured_cold_start_s: float | None = None
    calibration: float = 1.0

    @property
    def committed(self) -> int:
        """Replicas that are or will be serving without a new start (not draining)."""
        return self.starting + self.active + self.standby

    @property
    def paid(self) -> int:
        """Replicas the operator pays for now: every state but stopped."""
        return self.starting + self.active + self.standby + self.draining


@dataclass(frozen=True, slots=True)
class TokenMix:
    """Mean prompt and output tokens of the requests a fleet serves."""

    prompt_tokens: float
    output_tokens: float


@dataclass(frozen=True, slots=True)
class PoolCapacity:
    """One replica's SLO capacity in a pool at a token mix (``point`` None: the
    SLO cannot be met there at all, or capacity came from ``capacity_rps``)."""

    requests_per_s: float
    point: OperatingPoint | None

    @property
    def usable(self) -> bool:
        return self.requests_per_s > 0


def cold_start_s(spec: PoolSpec, status: PoolStatus | None) -> float:
    """The cold start to plan with: measured when known, else configured."""
    if status is not None and status.measured_cold_start_s is not None:
        return status.measured_cold_start_s
    return spec.cold_start_s


def slo_capacity(
    spec: PoolSpec, mix: TokenMix, slo: SLO, *, margin: float, calibration: float = 1.0
) -> PoolCapacity:
    """Requests/s one replica of ``spec`` sustains with TTFT and TPOT within
    ``margin`` x the SLO at ``mix`` (0 when not even one request at a time can)."""
    if spec.profile is None:
        return PoolCapacity(max(0.0, spec.capacity_rps or 0.0), None)
    point = efficient_point(
        spec.profile,
        prompt_tokens=mix.prompt_tokens,
        output_tokens=mix.output_tokens,
        tpot_limit_s=slo.tpot_ms / 1000.0 * margin,
        ttft_limit_s=slo.ttft_ms / 1000.0 * margin,
        step_scale=calibration if calibration > 0 else 1.0,
    )
    if point is None:
        return PoolCapacity(0.0, None)
    return PoolCapacity(point.requests_per_s, point)
