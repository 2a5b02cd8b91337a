"""One replica's SLO capacity (routing.fleet.pools on routing.capacity) and pool specs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backends.chips import chip_profile
from routing.capacity import efficient_point
from routing.fleet.pools import PoolSpec, PoolStatus, TokenMix, cold_start_s, slo_capacity
from routing.settings import SLO


def test_a_ttft_limit_caps_the_batch_a_replica_may_run():
    l4 = chip_profile("nvidia-l4")

    free = efficient_point(l4, prompt_tokens=2000, output_tokens=100, tpot_limit_s=0.2)
    capped = efficient_point(l4, prompt_tokens=2000, output_tokens=100, tpot_limit_s=0.2, ttft_limit_s=0.65)

    assert free is not None and capped is not None
    assert capped.ttft_s <= 0.65 < free.ttft_s
    assert capped.batch < free.batch
    # a prompt whose prefill alone misses the TTFT cannot be served within it at all
    assert efficient_point(l4, prompt_tokens=4000, output_tokens=100, tpot_limit_s=0.2, ttft_limit_s=0.8) is None


def test_slo_capacity_is_the_efficient_point_within_the_margin_of_the_slo():
    spec = PoolSpec("h", "m", "nvidia-h100", Decimal("3.99"), 0, 2, 60.0, chip_profile("nvidia-h100"))

    capacity = slo_capacity(spec, TokenMix(1000, 200), SLO(ttft_ms=1000, tpot_ms=100), margin=0.8)

    assert capacity.point is not None
    assert capacity.point.tpot_s <= 0.08 and capacity.point.ttft_s <= 0.8
    assert capacity.requests_per_s == capacity.point.requests_per_s > 0
    slower = slo_capacity(spec, TokenMix(1000, 200), SLO(), margin=0.8, calibration=2.0)
    assert slower.requests_per_s < capacity.requests_per_s


def test_a_pool_without_a_profile_uses_its_configured_capacity():
    spec = PoolSpec("x", "m", "external", Decimal(1), 0, 2, 60.0, None, capacity_rps=7.5)

    assert slo_capacity(spec, TokenMix(1000, 200), SLO(), margin=0.8).requests_per_s == 7.5
    assert not slo_capacity(PoolSpec("y", "m", "e", Decimal(1), 0, 2, 6.0, None), TokenMix(1, 1), SLO(),
                            margin=0.8).usable


def test_a_measured_cold_start_replaces_the_configured_one():
    spec = PoolSpec("x", "m", "c", Decimal(1), 0, 2, 60.0, None)

    assert cold_start_s(spec, PoolStatus()) == 60.0
    assert cold_start_s(spec, PoolStatus(measured_cold_start_s=42.0)) == 42.0
    assert PoolStatus(starting=1, active=2, standby=1, draining=3).committed == 4
    assert PoolStatus(starting=1, active=2, standby=1, draining=3).paid == 7


def test_pool_bounds_are_checked():
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        PoolSpec("x", "m", "c", Decimal(1), 3, 2, 60.0, None)
