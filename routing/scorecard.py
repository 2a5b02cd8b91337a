"""The chip scorecard: what each chip really does on live traffic.

Per chip, over a window of the most recent requests (bounded memory): output
tokens/s, TTFT p50/p95, success rate, and USD per 1M output tokens at the
measured throughput (replica busy seconds attributed to each request x $/hour).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

_MILLION = Decimal(1_000_000)
_SECONDS_PER_HOUR = Decimal(3600)


@dataclass(frozen=True, slots=True)
class _Sample:
    ok: bool
    ttft_s: float | None
    output_tokens: int
    latency_s: float
    replica_seconds: float
    cost_per_hour: Decimal


class Scorecard:
    """Per-chip rolling window of request outcomes."""

    def __init__(self, *, window: int = 1000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._samples: dict[str, deque[_Sample]] = {}

    def record(
        self,
        chip: str,
        ok: bool,
        ttft_s: float | None,
        output_tokens: int,
        latency_s: float,
        cost_per_hour: Decimal,
        *,
        replica_seconds: float | None = None,
    ) -> None:
        """Add one finished request. ``replica_seconds`` is its share of replica busy
        time; without it the request is assumed to have had the replica alone."""
        samples = self._samples.get(chip)
        if samples is None:
            samples = self._samples[chip] = deque(maxlen=self.window)
        share = latency_s if replica_seconds is None else replica_seconds
        samples.append(
            _Sample(ok, ttft_s, max(0, output_tokens), max(0.0, latency_s), max(0.0, share), Decimal(cost_per_hour))
        )

    def rows(self) -> list[dict[str, object]]:
        """One JSON-able row per chip, sorted by chip name."""
        return [self._row(chip, samples) for chip, samples in sorted(self._samples.items())]

    @staticmethod
    def _row(chip: str, samples: deque[_Sample]) -> dict[str, object]:
        ok = [s for s in samples if s.ok]
        tokens = sum(s.output_tokens for s in ok)
        busy = sum(s.replica_seconds for s in samples)
        ttfts = sorted(s.ttft_s for s in ok if s.ttft_s is not None)
        # failed requests' busy time is paid for too, so it counts in the cost
        spent = sum(
            (Decimal(repr(s.replica_seconds)) * s.cost_per_hour for s in samples), Decimal(0)
        ) / _SECONDS_PER_HOUR
        per_mtok = (spent / tokens * _MILLION).quantize(Decimal("0.0001")) if tokens else None
        latency_ok = sum(s.latency_s for s in ok)
        return {
            "chip": chip,
            "requests": len(samples),
            "success_rate": round(len(ok) / len(samples), 4),
            "output_tokens": tokens,
            # as a caller sees it: tokens per second of request time
            "output_tok_s": round(tokens / latency_ok, 2) if latency_ok > 0 else None,
            # as the operator pays for it: tokens per second of replica busy time
            "replica_output_tok_s": round(tokens / busy, 2) if busy > 0 else None,
            "ttft_p50_ms": _percentile_ms(ttfts, 0.50),
            "ttft_p95_ms": _percentile_ms(ttfts, 0.95),
            "usd_per_mtok_output": None if per_mtok is None else str(per_mtok),
        }


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[rank] * 1000, 2)
