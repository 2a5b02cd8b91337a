"""A short-horizon demand forecast: Holt's linear smoothing plus the recent peak.

Each planning tick observes the measured arrival rate y at time t. The level L
is an EWMA of y and the trend T an EWMA of the level's slope (Holt's double
exponential smoothing, with weights from half-lives so irregular ticks work):

    a = 1 - 2^(-dt / level_halflife)      L' = a y + (1 - a)(L + T dt)
    b = 1 - 2^(-dt / trend_halflife)      T' = b (L' - L) / dt + (1 - b) T

The forecast h seconds ahead is L + T h. What the planner provisions for over the
next h seconds is the envelope max(L, L + T h, recent peak): the trend carries a
ramp forward (so replicas with long cold starts start early enough), and the
recent peak keeps the capacity that a burst needed, which the smoothed level
under-reads. A falling trend never lowers the envelope below the level: scaling
in is the planner's hysteresis to decide, not the forecast's.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.settings import ForecastConfig


@dataclass(frozen=True, slots=True)
class Forecast:
    """Level (req/s), trend (req/s per s) and recent peak (req/s) at one time."""

    level: float
    trend: float
    peak: float

    def rate_at(self, ahead_s: float) -> float:
        """The expected arrival rate ``ahead_s`` seconds from now."""
        return max(0.0, self.level + self.trend * max(0.0, ahead_s))

    def envelope(self, ahead_s: float) -> float:
        """The rate to provision for over the next ``ahead_s`` seconds."""
        return max(self.level, self.rate_at(ahead_s), self.peak)


class Forecaster:
    """Holt smoothing of one model's arrival rate (one instance per model)."""

    def __init__(self, config: ForecastConfig) -> None:
        self.config = config
        self._at: float | None = None
        self._level = 0.0
        self._trend = 0.0

    def observe(self, now: float, rate: float) -> None:
        """Feed the rate measured at ``now`` (ticks at or before the last one are ignored)."""
        rate = max(0.0, rate)
        if self._at is None:
            self._at, self._level = now, rate
            return
        dt = now - self._at
        if dt <= 0:
            return
        a = 1.0 - 0.5 ** (dt / self.config.level_halflife_s)
        b = 1.0 - 0.5 ** (dt / self.config.trend_halflife_s)
        level = a * rate + (1.0 - a) * (self._level + self._trend * dt)
        self._trend = b * (level - self._level) / dt + (1.0 - b) * self._trend
        self._level = max(0.0, level)
        self._at = now

    def forecast(self, *, peak: float = 0.0) -> Forecast:
        """The current forecast; ``peak`` is the recent peak rate measured."""
        return Forecast(self._level, self._trend, max(0.0, peak))
