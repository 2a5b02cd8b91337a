"""One model replica as the router sees it: identity, price, backend, live state."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from backends.base import Backend
from routing.breaker import CircuitBreaker
from routing.telemetry import ReplicaTelemetry


class PerformanceProfile(Protocol):
    """The part of a chip profile (``backends.chips.ChipProfile``) routing uses."""

    max_batch: int

    def step_time_s(self, batch: int) -> float:
        """Seconds of one decode step with ``batch`` running sequences."""
        ...

    def prefill_time_s(self, tokens: int) -> float:
        """Seconds to prefill ``tokens`` prompt tokens."""
        ...


#: prefill never gets more than this share of a replica's time in the model
MAX_PREFILL_SHARE = 0.8


def profile_tpot_s(profile: PerformanceProfile, batch: float, prompt_tokens_per_s: float) -> float:
    """Model TPOT: the decode step at ``batch``, stretched by the prefill chunks of
    arriving prompts that vLLM interleaves into the steps (chunked prefill)."""
    step = profile.step_time_s(max(1, min(round(batch), profile.max_batch)))
    share = min(MAX_PREFILL_SHARE, profile.prefill_time_s(max(0, round(prompt_tokens_per_s))))
    return step / (1.0 - share)


class ReplicaState(StrEnum):
    """Where a replica is in its life: ``starting -> active -> draining -> stopped``,
    plus ``standby`` (warm, routed to only as overflow). Static replicas are active."""

    STARTING = "starting"
    ACTIVE = "active"
    STANDBY = "standby"
    DRAINING = "draining"
    STOPPED = "stopped"


class Replica:
    """A replica of one model on one chip, with its telemetry and circuit breaker.

    ``busy_until`` (monotonic seconds) is set from an upstream 429's Retry-After;
    only ``active`` replicas take new requests (``standby`` ones as overflow, chosen
    by the router); ``draining`` replicas finish what they have and take nothing new.
    """

    def __init__(
        self,
        id: str,
        model: str,
        chip: str,
        cost_per_hour: Decimal,
        backend: Backend,
        *,
        profile: PerformanceProfile | None,
        simulated: bool,
        telemetry: ReplicaTelemetry,
        breaker: CircuitBreaker,
    ) -> None:
        self.id = id
        self.model = model
        self.chip = chip
        self.cost_per_hour = Decimal(cost_per_hour)
        self.backend = backend
        self.profile = profile
        self.simulated = simulated
        self.telemetry = telemetry
        self.breaker = breaker
        if profile is not None and telemetry.tpot_reference is None:
            telemetry.tpot_reference = lambda batch, prompt_rate: profile_tpot_s(profile, batch, prompt_rate)
        self.state = ReplicaState.ACTIVE
        #: the fleet plan is about to drain this replica: routing steers new work elsewhere
        self.retiring = False
        self.busy_until = 0.0
        # float copy for scoring arithmetic; money sums stay in Decimal elsewhere
        self.cost_per_second = float(self.cost_per_hour) / 3600.0

    @property
    def draining(self) -> bool:
        return self.state is ReplicaState.DRAINING

    def routable(self, now: float, *, standby: bool = False) -> bool:
        """Active (or standby, when ``standby``), breaker allows a request, not marked busy by a 429."""
        state = self.state
        if state is not ReplicaState.ACTIVE and not (standby and state is ReplicaState.STANDBY):
            return False
        return now >= self.busy_until and self.breaker.allows(now)

    def available_at(self, now: float) -> float | None:
        """When this replica may be routable again; None while it is not active."""
        if self.state is not ReplicaState.ACTIVE:
            return None
        return max(self.busy_until, self.breaker.available_at(now), now)

    def snapshot(self, now: float | None = None) -> dict[str, object]:
        """A JSON-able live view for ``/admin/replicas``."""
        now = self.breaker.now() if now is None else now
        return {
            "id": self.id,
            "model": self.model,
            "chip": self.chip,
            "simulated": self.simulated,
            "cost_per_hour": str(self.cost_per_hour),
            "state": self.state.value,
            "routable": self.routable(now),
            "draining": self.draining,
            "busy_for_s": round(max(0.0, self.busy_until - now), 3),
            "breaker": self.breaker.snapshot(now),
            "telemetry": self.telemetry.snapshot(),
        }

    def __repr__(self) -> str:
        return f"Replica({self.id!r}, chip={self.chip!r}, model={self.model!r})"
