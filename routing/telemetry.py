"""Live statistics of one replica as the router sees it.

EWMAs of time-to-first-token, time-per-output-token and end-to-end latency,
outstanding work, recent error rate and the engine's own stats. Also the
calibration of predictions, so a chip profile that is off by 2x is corrected by
live traffic: TTFT compares what the policy predicted at dispatch with what
happened; TPOT compares each finished request's TPOT with the reference model
(``tpot_reference``, set from the chip profile) evaluated at the conditions the
request actually decoded under (mean batch, prompt tokens arriving), so batches
that grew after dispatch are not mistaken for a slow chip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from backends.base import EngineStats
from routing.settings import RoutingConfig

#: time constant of the decayed prompt-token arrival rate
_RATE_WINDOW_S = 5.0
#: calibration factors are clamped so one outlier cannot make a replica look free or dead
_CALIBRATION_RANGE = (0.25, 4.0)


class TpotReference(Protocol):
    """Model TPOT (seconds) at a mean batch and a rate of prompt tokens arriving."""

    def __call__(self, batch: float, prompt_tokens_per_s: float) -> float: ...


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
    #: sequence-time and prompt-token counters when the first token arrived
    sequence_mark: float = 0.0
    prompt_mark: float = 0.0
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
        self._created_at = self._prompt_mass_at
        self._prompt_total = 0.0
        self._sequence_integral = 0.0
        #: reference TPOT model for calibration (the Replica sets it from its chip profile)
        self.tpot_reference: TpotReference | None = None
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
        """Observed / reference-model TPOT over recent requests (None: no data)."""
        return _ratio(self._tpot_obs, self._tpot_pred)

    def prompt_tokens_per_s(self, now: float | None = None) -> float:
        """Recent rate of prompt tokens sent here (exponentially decayed, ~5 s window):
        the prefill work that will interrupt decoding."""
        now = self._clock() if now is None else now
        # early on the window is shorter than its time constant: don't under-count
        seen = 1.0 - math.exp(-max(0.0, now - self._created_at) / _RATE_WINDOW_S)
        return self._decayed_mass(now) / (_RATE_WINDOW_S * max(seen, 0.1))

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
        self._prompt_total += prompt_tokens
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
            now = self._clock()
            self._advance(now)
            ticket.first_token_at = now
            ticket.sequence_mark = self._sequence_integral
            ticket.prompt_mark = self._prompt_total
            self.prefill_backlog_tokens -= ticket.prompt_tokens
        return ticket.first_token_at - ticket.started

    def finish(self, ticket: InFlight, *, ok: bool | None, output_tokens: int | None = 0) -> float:
        """End a request: ``ok`` True/False feeds latency and error EWMAs, None means
        abandoned (client gone), which says nothing about the replica. ``output_tokens``
        None (the engine did not say) leaves the output-length and TPOT estimates alone.

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
        if output_tokens is None:
            if ticket.first_token_at is not None:
                self._ttft.add(ticket.first_token_at - ticket.started)
            return share
        self._output_tokens.add(output_tokens / max(1, ticket.sequences))
        if ticket.first_token_at is not None:
            ttft = ticket.first_token_at - ticket.started
            self._ttft.add(ttft)
            if ticket.predicted_ttft_s:
                self._ttft_obs.add(ttft)
                self._ttft_pred.add(ticket.predicted_ttft_s)
            per_sequence = output_tokens / max(1, ticket.sequences)
            decoding = now - ticket.first_token_at
            if per_sequence > 1 and decoding > 0:
                tpot = decoding / (per_sequence - 1)
                self._tpot.add(tpot)
                if self.tpot_reference is not None:
                    batch = (self._sequence_integral - ticket.sequence_mark) / decoding
                    arriving = (self._prompt_total - ticket.prompt_mark) / decoding
                    reference = self.tpot_reference(max(1.0, batch), arriving)
                    if reference > 0:
                        self._tpot_obs.add(tpot)
                        self._tpot_pred.add(reference)
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
            self._sequence_integral += elapsed * self.in_flight_sequences
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
