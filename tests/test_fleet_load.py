"""Arrival counting per model (routing.fleet.load): rates, peaks, token mix, merging."""

from __future__ import annotations

import random

import pytest

from routing.fleet.load import LoadTracker, LoadWindow
from routing.settings import LoadWindowConfig

CONFIG = LoadWindowConfig(bucket_s=5.0, rate_window_s=30.0, peak_span_s=30.0, peak_window_s=120.0,
                          window_s=300.0, mix_min_requests=50)


def steady(tracker: LoadTracker, start: float, end: float, rps: float, *, prompt: int = 1000,
           output: int = 100, seed: int = 7) -> None:
    """Poisson arrivals of ``rps`` from ``start`` to ``end``."""
    rng = random.Random(seed)
    t = start + rng.expovariate(rps)
    while t < end:
        tracker.record("m", t, prompt, output)
        t += rng.expovariate(rps)


def test_the_rate_is_measured_over_the_rate_window():
    tracker = LoadTracker(CONFIG)
    steady(tracker, 0.0, 300.0, 20.0)

    estimate = tracker.estimate("m", 300.0)

    assert estimate.requests_per_s == pytest.approx(20.0, rel=0.15)
    assert estimate.prompt_tokens == 1000.0 and estimate.output_tokens == 100.0


def test_the_bucket_in_progress_counts_for_the_time_it_has_run():
    tracker = LoadTracker(CONFIG)
    for i in range(60):  # 10 req/s over [270, 276)
        tracker.record("m", 270.0 + i / 10, 100, 10)

    # 27 s of the 30 s window have elapsed in buckets 54..; 60 requests in them
    assert tracker.estimate("m", 276.0).requests_per_s == pytest.approx(60 / (276.0 - 250.0))


def test_the_peak_of_a_steady_load_reads_as_the_load_not_as_its_noise():
    tracker = LoadTracker(CONFIG)
    steady(tracker, 0.0, 300.0, 20.0)

    estimate = tracker.estimate("m", 300.0)

    # four complete 30 s spans: the noisiest alone reads ~+4%; less one standard error
    assert estimate.peak_requests_per_s == pytest.approx(20.0, rel=0.06)


def test_a_burst_shows_in_the_peak_after_it_has_passed():
    tracker = LoadTracker(CONFIG)
    steady(tracker, 0.0, 240.0, 10.0)
    steady(tracker, 240.0, 270.0, 40.0, seed=8)
    steady(tracker, 270.0, 330.0, 10.0, seed=9)

    estimate = tracker.estimate("m", 330.0)

    assert estimate.requests_per_s == pytest.approx(10.0, rel=0.25)
    assert estimate.peak_requests_per_s > 30.0


def test_the_token_mix_follows_a_shift_as_soon_as_enough_requests_show_it():
    tracker = LoadTracker(CONFIG)
    steady(tracker, 0.0, 270.0, 10.0, prompt=500)
    steady(tracker, 270.0, 300.0, 10.0, prompt=2000, seed=8)

    assert tracker.estimate("m", 300.0).prompt_tokens == pytest.approx(2000.0, rel=0.05)


def test_with_few_requests_the_token_mix_reaches_further_back():
    tracker = LoadTracker(CONFIG)
    for i in range(40):
        tracker.record("m", 100.0 + i, 800, 80)
    tracker.record("m", 295.0, 4000, 80)

    estimate = tracker.estimate("m", 300.0)

    assert estimate.requests == 41
    assert estimate.prompt_tokens == pytest.approx((40 * 800 + 4000) / 41)


def test_windows_of_several_processes_sum_to_the_load_of_all():
    one, other, both = LoadTracker(CONFIG), LoadTracker(CONFIG), LoadTracker(CONFIG)
    steady(one, 0.0, 300.0, 6.0, seed=1)
    steady(other, 0.0, 300.0, 9.0, prompt=3000, seed=2)
    steady(both, 0.0, 300.0, 6.0, seed=1)
    steady(both, 0.0, 300.0, 9.0, prompt=3000, seed=2)

    merged = one.window("m").merged(other.window("m"))

    assert merged.estimate(300.0, CONFIG) == both.estimate("m", 300.0)
    assert merged.estimate(300.0, CONFIG).requests_per_s == pytest.approx(15.0, rel=0.2)


def test_windows_of_different_bucket_widths_do_not_merge():
    with pytest.raises(ValueError, match="cannot merge"):
        LoadWindow(5.0, {}).merged(LoadWindow(10.0, {}))


def test_models_are_counted_apart_and_old_buckets_are_dropped():
    tracker = LoadTracker(CONFIG)
    tracker.record("a", 0.0, 10, 1)
    tracker.record("b", 1000.0, 10, 1)
    tracker.record("a", 1000.0, 10, 1)

    assert tracker.models() == ["a", "b"]
    assert list(tracker.window("a").buckets) == [200]
    assert tracker.estimate("b", 1001.0).requests == 1
