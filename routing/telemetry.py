"""Live statistics of one replica as the router sees it.

EWMAs of time-to-first-token, time-per-output-token and end-to-end latency,
outstanding work, recent error rate and the engine's own stats. Also the
calibration of predictions: the EWMA of what a policy predicted next to the EWMA
of what happened, for the same requests, so a chip profile that is off by 2x is
corrected by live traffic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from backends.base import EngineStats
from gateway.config import RoutingConfig

#: time constant of the decayed prompt-token arrival rate
_RATE_WINDOW_S = 10.0
#: calibration factors are clamped so one outlier cannot make a replica look free or dead
_CALIBRATION_RANGE = (0.25, 4.0)


@dataclass(slots=True)
class InFlight:
    """One request (attempt) outstanding on a replica; returned by ``begin``."""

    started: float
    prompt_tokens: int
    sequences: int
    share_mark: float
    predicted_ttft_s: float | None = None
    predicted_tpot_s: float | None = None
    first_token_at: float | None = None
    done: bool = False


class _Ewma:
    """Exponentially weighted moving average; None until the first sample."""

    __slots__ = ("alpha", "value", "samples")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value: float | None = None
        self.samples = 0

    def add(self, sample: float) -> None:
        self.samples += 1
        self.value = sample if self.value is None else self.value + self.alpha * (sample - self.value)


class ReplicaTelemetry:
    """Per-replica EWMAs, in-flight accounting and the latest engine stats."""

    def __init__(self, *, alpha: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ttft = _Ewma(alpha)
        self._tpot = _Ewma(alpha)
        self._latency = _Ewma(alpha)
        self._errors = _Ewma(alpha)
        self._output_tokens = _Ewma(alpha)
        self._ttft_pred = _Ewma(alpha)
        self._ttft_obs = _Ewma(alpha)
        self._tpot_pred = _Ewma(alpha)
        self._tpot_obs = _Ewma(alpha)
        self.in_flight = 0
        self.in_flight_sequences = 0
        #: prompt tokens of in-flight requests whose first token has not been seen
        self.prefill_backlog_tokens = 0
        self.requests = 0
        self.failures = 0
        self.engine = EngineStats()
        self.engine_updated_at: float | None = None
        # integral over time of 1/in_flight: a request's share of busy time is the
        # difference of this between its end and its start
        self._prompt_mass = 0.0
        self._prompt_mass_at = clock()
        self._share_integral = 0.0
        self._busy_seconds = 0.0
        self._last_change = clock()

    @classmethod
    def from_config(cls, config: RoutingConfig, *, clock: Callable[[], float] = time.monotonic) -> ReplicaTelemetry:
        """Telemetry with ``routing.ewma_alpha``."""
        return cls(alpha=config.ewma_alpha, clock=clock)

    # -- reading ---------------------------------------------------------------

    @property
    def ttft_s(self) -> float | None:
        return self._ttft.value

    @property
    def tpot_s(self) -> float | None:
        return self._tpot.value

    @property
    def latency_s(self) -> float | None:
        return self._latency.value

    @property
    def output_tokens(self) -> float | None:
        """EWMA of output tokens per sequence of finished requests."""
        return self._output_tokens.value

    @property
    def error_rate(self) -> float:
        return self._errors.value or 0.0

    @property
    def busy_seconds(self) -> float:
        """Total time this replica had at least one request in flight."""
        self._advance(self._clock())
        return self._busy_seconds

    def ttft_calibration(self) -> float | None:
        """Observed / predicted TTFT over the same recent requests (None: no data)."""
        return _ratio(self._ttft_obs, self._ttft_pred)

    def tpot_calibration(self) -> float | None:
        """Observed / predicted TPOT over the same recent requests (None: no data)."""
        return _ratio(self._tpot_obs, self._tpot_pred)

    def prompt_tokens_per_s(self, now: float | None = None) -> float:
        """Recent rate of prompt tokens sent here (exponentially decayed, ~10 s window):
        the prefill work that will interrupt decoding."""
        now = self._clock() if now is None else now
        return self._decayed_mass(now) / _RATE_WINDOW_S

    def outstanding_sequences(self) -> int:
        """Sequences the replica is working on or queueing, by the freshest source.

        Our own in-flight count is exact for our traffic; the engine's running +
        waiting also sees other gateways' traffic but may be a scrape old.
        """
        engine = (self.engine.running or 0) + (self.engine.waiting or 0)
        return max(self.in_flight_sequences, engine)

    # -- writing ---------------------------------------------------------------

    def begin(
        self,
        prompt_tokens: int,
        sequences: int = 1,
        *,
        predicted_ttft_s: float | None = None,
        predicted_tpot_s: float | None = None,
    ) -> InFlight:
        """Count a request as outstanding; pass the ticket to ``first_token``/``finish``."""
        now = self._clock()
        self._advance(now)
        self.in_flight += 1
        self.in_flight_sequences += sequences
        self.prefill_backlog_tokens += prompt_tokens
        self._prompt_mass = self._decayed_mass(now) + prompt_tokens
        self._prompt_mass_at = now
        return InFlight(
            started=now,
            prompt_tokens=prompt_tokens,
            sequences=sequences,
            share_mark=self._share_integral,
            predicted_ttft_s=predicted_ttft_s,
            predicted_tpot_s=predicted_tpot_s,
        )

    def first_token(self, ticket: InFlight) -> float:
        """Note the first token of a request; returns its TTFT in seconds."""
        if ticket.first_token_at is None:
            ticket.first_token_at = self._clock()
            self.prefill_backlog_tokens -= ticket.prompt_tokens
        return ticket.first_token_at - ticket.started

    def finish(self, ticket: InFlight, *, ok: bool | None, output_tokens: int = 0) -> float:
        """End a request: ``ok`` True/False feeds latency and error EWMAs, None means
        abandoned (client gone), which says nothing about the replica.

        Returns the request's share of replica busy time in seconds.
        """
        if ticket.done:
            return 0.0
        ticket.done = True
        now = self._clock()
        self._advance(now)
        share = self._share_integral - ticket.share_mark
        self.in_flight -= 1
        self.in_flight_sequences -= ticket.sequences
        if ticket.first_token_at is None:
            self.prefill_backlog_tokens -= ticket.prompt_tokens
        if ok is None:
            return share
        self.requests += 1
        self._errors.add(0.0 if ok else 1.0)
        if not ok:
            self.failures += 1
            return share
        latency = now - ticket.started
        self._latency.add(latency)
        self._output_tokens.add(output_tokens / max(1, ticket.sequences))
        if ticket.first_token_at is not None:
            ttft = ticket.first_token_at - ticket.started
            self._ttft.add(ttft)
            if ticket.predicted_ttft_s:
                self._ttft_obs.add(ttft)
                self._ttft_pred.add(ticket.predicted_ttft_s)
            per_sequence = output_tokens / max(1, ticket.sequences)
            if per_sequence > 1:
                tpot = (now - ticket.first_token_at) / (per_sequence - 1)
                self._tpot.add(tpot)
                if ticket.predicted_tpot_s:
                    self._tpot_obs.add(tpot)
                    self._tpot_pred.add(ticket.predicted_tpot_s)
        return share

    def record_engine(self, stats: EngineStats) -> None:
        """Store the engine's latest self-reported stats."""
        self.engine = stats
        self.engine_updated_at = self._clock()

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the admin API."""
        return {
            "in_flight": self.in_flight,
            "in_flight_sequences": self.in_flight_sequences,
            "ttft_ms": _ms(self.ttft_s),
            "tpot_ms": _ms(self.tpot_s),
            "latency_ms": _ms(self.latency_s),
            "error_rate": round(self.error_rate, 4),
            "requests": self.requests,
            "failures": self.failures,
            "busy_seconds": round(self.busy_seconds, 3),
            "ttft_calibration": _round(self.ttft_calibration()),
            "tpot_calibration": _round(self.tpot_calibration()),
            "engine": {
                "running": self.engine.running,
                "waiting": self.engine.waiting,
                "kv_cache_usage": self.engine.kv_cache_usage,
            },
        }

    def _decayed_mass(self, now: float) -> float:
        elapsed = max(0.0, now - self._prompt_mass_at)
        return self._prompt_mass * math.exp(-elapsed / _RATE_WINDOW_S)

    def _advance(self, now: float) -> None:
        elapsed = now - self._last_change
        if elapsed > 0 and self.in_flight > 0:
            self._share_integral += elapsed / self.in_flight
            self._busy_seconds += elapsed
        self._last_change = max(now, self._last_change)


def _ratio(observed: _Ewma, predicted: _Ewma) -> float | None:
    if observed.value is None or not predicted.value:
        return None
    low, high = _CALIBRATION_RANGE
    return min(high, max(low, observed.value / predicted.value))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
