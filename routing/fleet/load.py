"""The load a model sees: arrivals counted in fixed time buckets, per model.

Buckets are indexed by ``floor(t / bucket_s)`` of the clock the caller passes, so
the counters of several gateway processes that share a clock (wall time) line up
and can be summed: :meth:`LoadTracker.window` gives one process's raw counters,
:meth:`LoadWindow.merged` sums windows, :meth:`LoadWindow.estimate` turns the sum
into a :class:`LoadEstimate`. Nothing here does I/O: shipping the counters between
processes (through Redis) is the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from routing.settings import LoadWindowConfig


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """Arrivals in one bucket and the tokens they carried."""

    requests: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: BucketCounts) -> BucketCounts:
        return BucketCounts(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
        )


@dataclass(frozen=True, slots=True)
class LoadEstimate:
    """The observed load of one model at ``at``.

    ``requests_per_s`` is the mean rate over the rate window; ``peak_requests_per_s``
    the highest rate over any peak span of the peak window; token means are None
    until a request was seen.
    """

    at: float
    requests_per_s: float
    peak_requests_per_s: float
    prompt_tokens: float | None
    output_tokens: float | None
    requests: int


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """Raw, summable counters: bucket index -> counts, for one model."""

    bucket_s: float
    buckets: Mapping[int, BucketCounts]

    def merged(self, *others: LoadWindow) -> LoadWindow:
        """The sum of this window and ``others`` (same bucket width)."""
        total = dict(self.buckets)
        for other in others:
            if other.bucket_s != self.bucket_s:
                raise ValueError(f"cannot merge windows of {other.bucket_s} s and {self.bucket_s} s buckets")
            for index, counts in other.buckets.items():
                total[index] = total.get(index, BucketCounts()) + counts
        return LoadWindow(self.bucket_s, total)

    def estimate(self, now: float, config: LoadWindowConfig) -> LoadEstimate:
        """Rate, recent peak and token means at ``now``; the bucket holding ``now``
        counts for the part of it that has elapsed."""
        width = self.bucket_s
        current = math.floor(now / width)

        def rate(last: int, buckets: int, *, partial: bool) -> float:
            first = last - buckets + 1
            span = (now - first * width) if partial else buckets * width
            count = sum(self.buckets[i].requests for i in range(first, last + 1) if i in self.buckets)
            return count / span if span > 0 else 0.0

        rate_buckets = max(1, round(config.rate_window_s / width))
        requests_per_s = rate(current, rate_buckets, partial=True)
        span_buckets = max(1, round(config.peak_span_s / width))
        peak_buckets = max(span_buckets, round(config.peak_window_s / width))
        # complete spans only, so a half-elapsed bucket never reads as a dip or a burst
        peak = max(
            (rate(last, span_buckets, partial=False) for last in range(current - peak_buckets + span_buckets - 1, current)),
            default=0.0,
        )
        kept = max(1, round(config.window_s / width))
        recent = [c for i, c in self.buckets.items() if current - kept < i <= current]
        requests = sum(c.requests for c in recent)
        return LoadEstimate(
            at=now,
            requests_per_s=requests_per_s,
            peak_requests_per_s=max(peak, requests_per_s),
            prompt_tokens=sum(c.prompt_tokens for c in recent) / requests if requests else None,
            output_tokens=sum(c.output_tokens for c in recent) / requests if requests else None,
            requests=requests,
        )


class LoadTracker:
    """Counts arrivals per model in rolling buckets (one event loop owns it)."""

    def __init__(self, config: LoadWindowConfig) -> None:
        self.config = config
        self._buckets: dict[str, dict[int, BucketCounts]] = {}
        self._keep = max(
            1,
            round(max(config.window_s, config.peak_window_s, config.rate_window_s) / config.bucket_s) + 1,
        )

    def record(self, model: str, now: float, prompt_tokens: int, output_tokens: int) -> None:
        """Count one request of ``model`` at ``now`` (output tokens: produced, or expected)."""
        index = math.floor(now / self.config.bucket_s)
        buckets = self._buckets.setdefault(model, {})
        buckets[index] = buckets.get(index, BucketCounts()) + BucketCounts(
            1, max(0, prompt_tokens), max(0, output_tokens)
        )
        if len(buckets) > self._keep:
            for old in [i for i in buckets if i <= index - self._keep]:
                del buckets[old]

    def window(self, model: str) -> LoadWindow:
        """This process's raw counters for ``model`` (a copy)."""
        return LoadWindow(self.config.bucket_s, dict(self._buckets.get(model, {})))

    def estimate(self, model: str, now: float) -> LoadEstimate:
        """The load of ``model`` as this process alone saw it."""
        return self.window(model).estimate(now, self.config)

    def models(self) -> list[str]:
        """Models with any recorded arrival."""
        return sorted(self._buckets)
