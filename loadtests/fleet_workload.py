"""The fleet benchmark's load: a real day of a model service, compressed and scaled.

The per-minute curve of Alibaba's Bailian service (ServeGen) gives each minute's
request count and mean prompt/output tokens. A run compresses each minute into
``seconds_per_minute`` simulated seconds (the day's shape, faster) and scales the
counts so the day's busiest minute arrives at ``peak_rps``. Within a minute,
arrivals are Poisson at that minute's rate. Each request's lengths are a pair
drawn from the Azure conversation trace (real joint prompt/output shape),
scaled so the minute's means match the Bailian curve, and capped at an 8k context.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.routing_sim import TraceRequest

DATA = Path(__file__).resolve().parent / "data"
CURVE = DATA / "bailian_m-large_day9_per_minute.csv"
LENGTHS = DATA / "azure_conv_2023_lengths_sample.csv"
MAX_CONTEXT = 8192


@dataclass(frozen=True, slots=True)
class MinuteLoad:
    """One minute of the curve: requests in it and their mean lengths."""

    requests: float
    prompt_tokens: float
    output_tokens: float


def load_curve(path: str | Path = CURVE, *, day: int | None = None) -> list[MinuteLoad]:
    """Read the per-minute curve (``day``: pick that day, 0-based, of a multi-day file)."""
    with open(path, newline="") as f:
        rows = [
            MinuteLoad(float(r["requests"]), float(r["mean_prompt_tokens"]), float(r["mean_output_tokens"]))
            for r in csv.DictReader(f)
        ]
    if day is not None:
        rows = rows[day * 1440 : (day + 1) * 1440]
    if not rows:
        raise ValueError(f"no minutes in {path} (day {day})")
    return rows


def load_lengths(path: str | Path = LENGTHS) -> list[tuple[int, int]]:
    """Read ``num_prefill_tokens,num_decode_tokens`` pairs."""
    with open(path, newline="") as f:
        return [
            (max(1, int(r["num_prefill_tokens"])), max(1, int(r["num_decode_tokens"]))) for r in csv.DictReader(f)
        ]


@dataclass(frozen=True, slots=True)
class MinuteRate:
    """One replayed minute at the run's scale: its arrival rate and mean lengths."""

    requests_per_s: float
    prompt_tokens: float
    output_tokens: float


@dataclass(frozen=True, slots=True)
class Workload:
    """A generated run: requests, and the per-minute rates that produced them."""

    requests: list[TraceRequest]
    #: simulated seconds per curve minute
    seconds_per_minute: float
    #: the curve minutes replayed, at the run's scale
    minutes: list[MinuteRate]
    #: requests per minute of the curve -> req/s of the run
    scale: float

    @property
    def duration_s(self) -> float:
        return len(self.minutes) * self.seconds_per_minute

    def rate_at(self, t: float) -> MinuteRate:
        """The scaled load of the minute that simulated time ``t`` falls in."""
        index = min(len(self.minutes) - 1, max(0, int(t // self.seconds_per_minute)))
        return self.minutes[index]


def generate(
    curve: Sequence[MinuteLoad],
    lengths: Sequence[tuple[int, int]],
    *,
    seconds_per_minute: float,
    peak_rps: float,
    first_minute: int = 0,
    minutes: int | None = None,
    seed: int = 1,
) -> Workload:
    """Arrivals for ``minutes`` curve minutes from ``first_minute`` (all by default).

    Scaling uses the busiest minute of the whole curve, so a slice of the day keeps
    the absolute rates it has in the full run.
    """
    rng = random.Random(seed)
    scale = peak_rps / max(m.requests for m in curve)
    chosen = list(curve[first_minute : None if minutes is None else first_minute + minutes])
    prompt_mean = sum(p for p, _ in lengths) / len(lengths)
    output_mean = sum(o for _, o in lengths) / len(lengths)
    requests: list[TraceRequest] = []
    scaled: list[MinuteRate] = []
    for i, minute in enumerate(chosen):
        rate = minute.requests * scale
        scaled.append(MinuteRate(rate, minute.prompt_tokens, minute.output_tokens))
        start, end = i * seconds_per_minute, (i + 1) * seconds_per_minute
        t = start + rng.expovariate(rate) if rate > 0 else end
        while t < end:
            prompt, output = lengths[rng.randrange(len(lengths))]
            output = max(1, round(output * minute.output_tokens / output_mean))
            prompt = max(1, min(MAX_CONTEXT - output, round(prompt * minute.prompt_tokens / prompt_mean)))
            requests.append(TraceRequest(t, prompt, output))
            t += rng.expovariate(rate)
    return Workload(requests, seconds_per_minute, scaled, scale)
