"""The fleet planner's choices on constructed loads and pools (routing.fleet.planner)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from backends.chips import chip_profile
from routing.fleet import FleetPlan, FleetPlanner, LoadEstimate, PoolSpec, PoolStatus
from routing.settings import SLO, ForecastConfig, PlannerConfig

MODEL = "m"


def pool(
    name: str, *, rps: float, usd: str, cold_s: float = 30.0, min_replicas: int = 0, max_replicas: int = 8
) -> PoolSpec:
    """A pool whose replicas serve a fixed ``rps`` within the SLO (no profile)."""
    return PoolSpec(name, MODEL, name, Decimal(usd), min_replicas, max_replicas, cold_s, None, capacity_rps=rps)


def load(now: float, rps: float, *, peak: float | None = None) -> LoadEstimate:
    return LoadEstimate(now, rps, rps if peak is None else peak, 1000.0, 200.0, 1000)


def config(**overrides: object) -> PlannerConfig:
    """Round numbers: 20% headroom, a forecast that follows the load within a tick."""
    base: dict[str, object] = {
        "interval_s": 5.0,
        "headroom": 0.2,
        "scale_in_after_s": 60.0,
        "min_up_s": 0.0,
        "forecast": ForecastConfig(level_halflife_s=0.5, trend_halflife_s=600.0),
    }
    base.update(overrides)
    return PlannerConfig(**base)  # type: ignore[arg-type]


def running(plan: FleetPlan) -> dict[str, PoolStatus]:
    """What runs once the plan is enacted and every start has finished."""
    return {p.pool: PoolStatus(active=p.desired_active, standby=p.desired_standby) for p in plan.pools}


def counts(plan: FleetPlan) -> Mapping[str, int]:
    return {p.pool: p.desired_active for p in plan.pools}


BIG = pool("big", rps=20.0, usd="4.00")
SMALL = pool("small", rps=6.0, usd="1.00")


def test_two_small_chips_are_cheaper_than_one_big_one():
    planner = FleetPlanner(config(), slo=SLO())

    plan = planner.plan(MODEL, 0.0, load(0.0, 8.0), [BIG, SMALL], {})

    # 8 req/s + 20% = 9.6: two small ($2/h) beat one big ($4/h)
    assert counts(plan) == {"big": 0, "small": 2}
    assert plan.feasible
    assert plan.cost_per_hour == Decimal("2.00")
    assert "2 x small cover 12.0 req/s" in plan.summary


def test_one_big_chip_wins_when_it_is_cheaper_per_request():
    big = pool("big", rps=20.0, usd="2.50")
    planner = FleetPlanner(config(), slo=SLO())

    plan = planner.plan(MODEL, 0.0, load(0.0, 16.0), [big, SMALL], {})

    # 19.2 req/s: one big ($2.50/h) beats four small ($4/h)
    assert counts(plan) == {"big": 1, "small": 0}


def test_scale_in_waits_until_the_load_has_stayed_below_for_the_configured_time():
    planner = FleetPlanner(config(scale_in_after_s=60.0), slo=SLO())
    plan = planner.plan(MODEL, 0.0, load(0.0, 20.0), [SMALL], {})
    assert counts(plan) == {"small": 4}  # 24 req/s

    held = planner.plan(MODEL, 30.0, load(30.0, 5.0), [SMALL], running(plan))
    assert counts(held) == {"small": 4}
    assert "scale-in held 30 s more" in held.summary

    shrunk = planner.plan(MODEL, 61.0, load(61.0, 5.0), [SMALL], running(held))
    assert counts(shrunk) == {"small": 1}  # 6 req/s
    assert "small 4 -> 1: saves $3.00/h" in shrunk.summary


def test_a_replica_the_planner_started_stays_for_the_minimum_up_time():
    planner = FleetPlanner(config(scale_in_after_s=0.0, min_up_s=100.0), slo=SLO())
    plan = planner.plan(MODEL, 0.0, load(0.0, 10.0), [SMALL], {})
    assert counts(plan) == {"small": 2}

    assert counts(planner.plan(MODEL, 50.0, load(50.0, 1.0), [SMALL], running(plan))) == {"small": 2}
    assert counts(planner.plan(MODEL, 101.0, load(101.0, 1.0), [SMALL], running(plan))) == {"small": 1}


def test_replicas_never_go_below_min_or_above_max():
    floor = pool("floor", rps=6.0, usd="1.00", min_replicas=2, max_replicas=3)
    planner = FleetPlanner(config(), slo=SLO())

    idle = planner.plan(MODEL, 0.0, load(0.0, 0.0), [floor], {})
    assert counts(idle) == {"floor": 2}

    flooded = planner.plan(MODEL, 1.0, load(1.0, 100.0), [floor], running(idle))
    assert counts(flooded) == {"floor": 3}
    assert not flooded.feasible
    assert "SLO infeasible: 120.0 req/s needed, every pool at max gives 18.0 req/s" in flooded.summary


def test_no_pool_meeting_the_slo_gives_the_fastest_chip_and_says_why():
    pools = [
        PoolSpec(c, MODEL, c, chip_profile(c).cost_per_hour, 0, 4, 60.0, chip_profile(c))
        for c in ("nvidia-l4", "nvidia-h100")
    ]
    planner = FleetPlanner(config(), slo=SLO(ttft_ms=1000, tpot_ms=5))  # 5 ms per token: no chip does it

    plan = planner.plan(MODEL, 0.0, load(0.0, 2.0), pools, {})

    assert not plan.feasible
    assert counts(plan) == {"nvidia-l4": 0, "nvidia-h100": 1}
    assert "no pool meets TTFT 1000 ms / TPOT 5 ms" in plan.summary
    assert "best effort on nvidia-h100" in plan.summary


def test_slo_capacity_comes_from_the_chip_profile_at_the_observed_token_mix():
    h100 = PoolSpec("h100", MODEL, "nvidia-h100", Decimal("3.99"), 0, 4, 60.0, chip_profile("nvidia-h100"))
    planner = FleetPlanner(config(), slo=SLO())

    short = planner.plan(MODEL, 0.0, LoadEstimate(0.0, 10.0, 10.0, 200.0, 100.0, 500), [h100], {})
    long = FleetPlanner(config(), slo=SLO()).plan(MODEL, 0.0, LoadEstimate(0.0, 10.0, 10.0, 4000.0, 100.0, 500), [h100], {})

    # long prompts fill a replica's time with prefill: fewer requests per second each
    assert short.pool("h100").capacity_rps > 2 * long.pool("h100").capacity_rps
    assert short.pool("h100").tpot_s is not None and short.pool("h100").tpot_s <= 0.08


def test_a_pool_slower_to_start_than_the_forecast_is_trusted_keeps_a_warm_standby():
    slow = pool("slow", rps=10.0, usd="2.00", cold_s=900.0, max_replicas=4)
    planner = FleetPlanner(config(trusted_horizon_s=300.0, standby_surge=0.25), slo=SLO())

    plan = planner.plan(MODEL, 0.0, load(0.0, 16.0), [slow], {})

    # 19.2 req/s on two replicas (20); a 25% surge (24) needs one more, ready in a second
    assert plan.pool("slow").desired_active == 2
    assert plan.pool("slow").desired_standby == 1
    assert plan.cost_per_hour == Decimal("6.00")
    assert "1 x slow on standby: its 900 s cold start is beyond the 300 s the forecast is trusted for" in plan.summary


def test_pools_that_start_fast_enough_need_no_standby():
    planner = FleetPlanner(config(trusted_horizon_s=300.0), slo=SLO())

    plan = planner.plan(MODEL, 0.0, load(0.0, 16.0), [pool("quick", rps=10.0, usd="2.00", cold_s=60.0)], {})

    assert plan.pool("quick").desired_standby == 0


def ramp_to_16_rps(pools: list[PoolSpec], status: dict[str, PoolStatus]) -> FleetPlan:
    """Plans every 5 s while the load climbs 13 -> 16 req/s (+0.05 req/s per second)."""
    planner = FleetPlanner(config(forecast=ForecastConfig(level_halflife_s=0.5, trend_halflife_s=5.0)), slo=SLO())
    plan = None
    for t in range(0, 61, 5):
        plan = planner.plan(MODEL, float(t), load(float(t), 13.0 + 0.05 * t), pools, status)
    assert plan is not None
    return plan


def test_a_replica_starts_as_soon_as_the_forecast_at_its_cold_start_needs_it():
    slow = pool("slow", rps=10.0, usd="1.00", cold_s=120.0)

    plan = ramp_to_16_rps([slow], {"slow": PoolStatus(active=2)})

    # 19.2 req/s now fits in 20; ~22 req/s by the time a replica started now is ready does not
    assert plan.pool("slow").desired_active == 3
    assert plan.pool("slow").starting_now == 1


def test_a_quick_starting_replica_is_planned_but_started_only_when_its_lead_time_comes():
    fast = pool("fast", rps=10.0, usd="1.00", cold_s=1.0)
    slow = pool("slow", rps=10.0, usd="2.00", cold_s=120.0)

    plan = ramp_to_16_rps([fast, slow], {"fast": PoolStatus(active=2), "slow": PoolStatus()})

    # the target (sized for the slow pool's horizon) takes a third fast replica, but
    # a 1 s start can wait for the tick at which the forecast first needs it
    assert plan.pool("fast").planned == 3
    assert plan.pool("fast").desired_active == 2
    assert plan.pool("slow").desired_active == 0
    assert "1 more x fast planned, started 6 s before the forecast needs them" in plan.summary


def test_the_router_reporting_overload_scales_out_at_once_and_only_once_a_tick():
    planner = FleetPlanner(config(overload_step=0.25), slo=SLO())
    plan = planner.plan(MODEL, 0.0, load(0.0, 8.0), [SMALL], {})
    assert counts(plan) == {"small": 2}

    urgent = planner.scale_out_now(MODEL, 1.0, load(1.0, 8.0), [SMALL], running(plan))
    # 2 x 6 req/s serving, +25% = 15 req/s: a third replica now, not at the next tick
    assert counts(urgent) == {"small": 3}
    assert "router: no active replica meets the SLO; planning for 15.0 req/s now" in urgent.summary
    starting = {"small": PoolStatus(active=2, starting=1)}
    again = planner.scale_out_now(MODEL, 2.0, load(2.0, 8.0), [SMALL], starting)
    assert counts(again) == {"small": 3}


def test_overload_with_nothing_running_starts_the_cheapest_replica():
    planner = FleetPlanner(config(), slo=SLO())

    plan = planner.scale_out_now(MODEL, 0.0, load(0.0, 0.0), [BIG, SMALL], {})

    assert counts(plan) == {"big": 0, "small": 1}


def test_a_cheaper_chip_replaces_a_dearer_one_only_once_it_is_active():
    planner = FleetPlanner(config(swap_saving=0.2), slo=SLO())
    status = {"big": PoolStatus(active=1), "small": PoolStatus()}

    swap = planner.plan(MODEL, 0.0, load(0.0, 8.0), [BIG, SMALL], status)
    assert counts(swap) == {"big": 1, "small": 2}  # big kept while the small ones start
    assert "keeping big until the replicas replacing them are active" in swap.summary

    done = planner.plan(MODEL, 5.0, load(5.0, 8.0), [BIG, SMALL], {"big": PoolStatus(active=1),
                                                                    "small": PoolStatus(active=2)})
    assert counts(done) == {"big": 0, "small": 2}
    assert "big stopped: saves $4.00/h" in done.summary


def test_a_swap_of_chips_that_saves_little_waits_like_a_scale_in():
    cheaper = pool("cheaper", rps=20.0, usd="3.80")
    planner = FleetPlanner(config(swap_saving=0.2, scale_in_after_s=60.0), slo=SLO())
    status = {"big": PoolStatus(active=1), "cheaper": PoolStatus()}

    held = planner.plan(MODEL, 0.0, load(0.0, 10.0), [BIG, cheaper], status)
    assert counts(held) == {"big": 1, "cheaper": 0}
    assert "swap of chips held 60 s more" in held.summary
    later = planner.plan(MODEL, 61.0, load(61.0, 10.0), [BIG, cheaper], status)
    assert counts(later) == {"big": 1, "cheaper": 1}


def test_every_plan_prices_what_it_keeps_and_what_all_pools_at_max_would_cost():
    planner = FleetPlanner(config(), slo=SLO())

    plan = planner.plan(MODEL, 0.0, load(0.0, 8.0), [BIG, SMALL], {})

    assert plan.cost_per_hour == Decimal("2.00")
    assert plan.max_cost_per_hour == Decimal("40.00")  # 8 x $4 + 8 x $1
    assert plan.reasons[-1] == "fleet $2.00/h (all pools at max: $40.00/h)"
    snapshot = plan.snapshot()
    assert snapshot["pools"][1]["desired_active"] == 2  # type: ignore[index]


@pytest.mark.parametrize("rps", [0.0, 3.0, 30.0])
def test_the_plan_always_covers_the_demand_when_it_can(rps: float):
    planner = FleetPlanner(config(), slo=SLO())

    plan = planner.plan(MODEL, 0.0, load(0.0, rps), [BIG, SMALL], {})

    assert plan.feasible
    assert plan.capacity_rps >= rps * 1.2 - 1e-9
