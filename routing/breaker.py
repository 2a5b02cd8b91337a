"""Circuit breaker: stop sending traffic to a replica that keeps failing.

closed --N consecutive failures--> open --cooldown--> half-open: exactly ONE probe
request goes through; its success closes the breaker, its failure re-opens it
(for another cooldown).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from routing.settings import RoutingConfig

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Per-replica breaker. Time comes from the injected clock (monotonic seconds)."""

    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_s: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.times_opened = 0

    @classmethod
    def from_config(cls, config: RoutingConfig, *, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
        """A breaker with ``routing.breaker_failures`` / ``routing.breaker_cooldown_s``."""
        return cls(config.breaker_failures, config.breaker_cooldown_s, clock=clock)

    def now(self) -> float:
        """The breaker's clock (monotonic seconds)."""
        return self._clock()

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def state(self, now: float | None = None) -> BreakerState:
        """The state at ``now`` (default: the clock); open turns half-open by itself."""
        if self._opened_at is None:
            return "closed"
        now = self._clock() if now is None else now
        return "half_open" if now >= self._opened_at + self.cooldown_s else "open"

    def allows(self, now: float | None = None) -> bool:
        """Whether a request may be sent now (half-open: only while no probe is out)."""
        state = self.state(now)
        return state == "closed" or (state == "half_open" and not self._probe_in_flight)

    def acquire(self, now: float | None = None) -> bool:
        """Claim the right to send one request; in half-open this takes the probe slot."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def release(self) -> None:
        """Give the probe slot back without an outcome (request abandoned by its caller)."""
        self._probe_in_flight = False

    def record_success(self) -> None:
        """A request succeeded: close and forget past failures."""
        self._consecutive_failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self, now: float | None = None) -> None:
        """A request failed: count it; open on the threshold or when a probe fails."""
        now = self._clock() if now is None else now
        self._consecutive_failures += 1
        if self._opened_at is not None:
            # a failure while open or half-open (the probe, or a health check) restarts the cooldown
            self._opened_at = now
            self._probe_in_flight = False
        elif self._consecutive_failures >= self.failure_threshold:
            self._opened_at = now
            self.times_opened += 1

    def probe_succeeded(self, now: float | None = None) -> None:
        """A health probe succeeded: closes a half-open breaker, nothing else."""
        if self.state(now) == "half_open":
            self.record_success()

    def available_at(self, now: float | None = None) -> float:
        """Earliest time a request could be allowed (``now`` if it is allowed now)."""
        now = self._clock() if now is None else now
        if self.allows(now):
            return now
        assert self._opened_at is not None
        reopen = self._opened_at + self.cooldown_s
        # a probe is out: the earliest news is its answer; guess one cooldown
        return reopen if reopen > now else now + self.cooldown_s

    def snapshot(self, now: float | None = None) -> dict[str, object]:
        """A JSON-able view for the admin API."""
        now = self._clock() if now is None else now
        return {
            "state": self.state(now),
            "consecutive_failures": self._consecutive_failures,
            "probe_in_flight": self._probe_in_flight,
            "times_opened": self.times_opened,
            "retry_in_s": round(max(0.0, self.available_at(now) - now), 3),
        }
