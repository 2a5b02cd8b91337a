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
    the highest rate over any complete peak span of the peak window, less
    ``peak_z`` Poisson standard errors (a burst, not noise); token means (None until
    a request was seen) cover the rate window, or as much more of the window as it
    takes to hold ``mix_min_requests``; ``requests`` is how many they cover.
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

        def count(last: int, buckets: int) -> int:
            return sum(self.buckets[i].requests for i in range(last - buckets + 1, last + 1) if i in self.buckets)

        rate_buckets = max(1, round(config.rate_window_s / width))
        elapsed = now - (current - rate_buckets + 1) * width
        requests_per_s = count(current, rate_buckets) / elapsed if elapsed > 0 else 0.0
        span_buckets = max(1, round(config.peak_span_s / width))
        peak_buckets = max(span_buckets, round(config.peak_window_s / width))
        span = span_buckets * width

        def burst(n: int) -> float:
            # a span's rate less z Poisson standard errors: the highest of several
            # noisy rates is otherwise a burst that never happened
            return max(0.0, n - config.peak_z * math.sqrt(n)) / span

        # complete spans only, so a half-elapsed bucket never reads as a dip or a burst
        peak = max(
            (burst(count(last, span_buckets)) for last in range(current - peak_buckets + span_buckets - 1, current)),
            default=0.0,
        )
        # token means follow the mix as fast as the rate (a shift to long prompts cuts
        # capacity at once), over more of the window only when too few requests arrived
        kept = max(1, round(config.window_s / width))
        mix = BucketCounts()
        for age in range(kept):
            mix += self.buckets.get(current - age, BucketCounts())
            if age + 1 >= rate_buckets and mix.requests >= config.mix_min_requests:
                break
        return LoadEstimate(
            at=now,
            requests_per_s=requests_per_s,
            peak_requests_per_s=peak,
            prompt_tokens=mix.prompt_tokens / mix.requests if mix.requests else None,
            output_tokens=mix.output_tokens / mix.requests if mix.requests else None,
            requests=mix.requests,
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
        # buckets arrive in time order, so the stale ones are at the front
        while buckets and (oldest := next(iter(buckets))) <= index - self._keep:
            del buckets[oldest]

    def window(self, model: str) -> LoadWindow:
        """This process's raw counters for ``model`` (a copy)."""
        return LoadWindow(self.config.bucket_s, dict(self._buckets.get(model, {})))

    def estimate(self, model: str, now: float) -> LoadEstimate:
        """The load of ``model`` as this process alone saw it."""
        return self.window(model).estimate(now, self.config)

    def models(self) -> list[str]:
        """Models with any recorded arrival."""
        return sorted(self._buckets)
