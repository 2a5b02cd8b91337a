"""Each policy's choice on constructed telemetry."""

from __future__ import annotations

import pytest

from backends.base import EngineStats
from gateway.config import SLO
from routing.policies import POLICY_NAMES, make_policy
from routing.policies.presets import cost_latency, prefix_affinity
from routing.preferences import RoutingPreference
from routing.route import RouteRequest
from tests.fakes.routing import FakeClock, LinearProfile, make_replica

SLO_DEFAULT = SLO(ttft_ms=1000, tpot_ms=100)
#: fast and pricey, like an H100
FAST = LinearProfile(prefill_tok_s=30_000, step_1_s=0.007, step_32_s=0.0097, max_batch=256)
#: slower and cheap, like an A100
MID = LinearProfile(prefill_tok_s=10_000, step_1_s=0.0115, step_32_s=0.0176, max_batch=256)
#: slow prefill and decode, like an L4
SLOW = LinearProfile(prefill_tok_s=3_800, step_1_s=0.076, step_32_s=0.095, max_batch=24)


def route(prompt: int = 500, max_tokens: int = 200, **kw) -> RouteRequest:
    return RouteRequest(model="m", prompt_tokens=prompt, max_tokens=max_tokens, **kw)


def loaded(replica, running: int):
    replica.telemetry.record_engine(EngineStats(running=running, waiting=0))
    return replica


def test_make_policy_builds_every_named_policy_and_refuses_unknown_names():
    for name in POLICY_NAMES:
        assert make_policy(name, slo=SLO_DEFAULT).name == name
    with pytest.raises(ValueError, match="cost_latency"):
        make_policy("random", slo=SLO_DEFAULT)


def test_round_robin_takes_replicas_in_turn():
    policy = make_policy("round_robin", slo=SLO_DEFAULT)
    pool = [make_replica(i) for i in ("b", "a", "c")]
    assert [policy.choose(pool, route(), 0).replica.id for _ in range(4)] == ["a", "b", "c", "a"]


def test_round_robin_continues_after_the_last_choice_when_one_leaves():
    policy = make_policy("round_robin", slo=SLO_DEFAULT)
    a, b, c = (make_replica(i) for i in "abc")
    assert policy.choose([a, b, c], route(), 0).replica is a
    assert policy.choose([a, c], route(), 0).replica is c


def test_least_outstanding_picks_the_replica_with_fewest_sequences():
    policy = make_policy("least_outstanding", slo=SLO_DEFAULT)
    a, b, c = loaded(make_replica("a"), 5), loaded(make_replica("b"), 2), loaded(make_replica("c"), 9)
    assert policy.choose([a, b, c], route(), 0).replica is b


def test_least_outstanding_counts_our_own_in_flight_requests():
    policy = make_policy("least_outstanding", slo=SLO_DEFAULT)
    a, b = make_replica("a"), make_replica("b")
    a.telemetry.begin(10, 4)
    assert policy.choose([a, b], route(), 0).replica is b


def test_cheapest_picks_lowest_cost_per_hour():
    policy = make_policy("cheapest", slo=SLO_DEFAULT)
    pool = [make_replica("h", cost="3.99"), make_replica("l", cost="0.81"), make_replica("a", cost="1.79")]
    decision = policy.choose(pool, route(), 0)
    assert decision.replica.id == "l"


def test_lowest_latency_prefers_the_fast_chip_until_its_queue_makes_it_slower():
    policy = make_policy("lowest_latency", slo=SLO_DEFAULT)
    fast, mid = make_replica("fast", profile=FAST), make_replica("mid", profile=MID)
    assert policy.choose([fast, mid], route(), 0).replica is fast
    # far beyond max batch: queued behind hundreds of sequences
    loaded(fast, 2000)
    decision = policy.choose([fast, mid], route(), 0)
    assert decision.replica is mid
    assert decision.predicted_ttft_s is not None


def test_prefix_affinity_sends_the_same_prefix_to_the_same_replica():
    policy = make_policy("prefix_affinity", slo=SLO_DEFAULT)
    pool = [make_replica(f"r{i}") for i in range(5)]
    owners = {policy.choose(pool, route(prefix_key="system-prompt-42"), 0).replica.id for _ in range(10)}
    assert len(owners) == 1
    spread = {policy.choose(pool, route(prefix_key=f"p{i}"), 0).replica.id for i in range(100)}
    assert len(spread) == 5


def test_prefix_affinity_keeps_other_prefixes_in_place_when_a_replica_leaves():
    policy = prefix_affinity(SLO())
    pool = [make_replica(f"r{i}") for i in range(5)]
    before = {k: policy.choose(pool, route(prefix_key=k), 0).replica.id for k in (f"p{i}" for i in range(200))}
    survivors = [r for r in pool if r.id != "r2"]
    after = {k: policy.choose(survivors, route(prefix_key=k), 0).replica.id for k in before}
    moved = [k for k in before if before[k] != after[k]]
    assert moved and all(before[k] == "r2" for k in moved)


def test_prefix_affinity_falls_back_to_least_loaded_when_the_owner_is_overloaded():
    policy = prefix_affinity(SLO(), imbalance=2.0, slack=4)
    pool = [make_replica(f"r{i}") for i in range(3)]
    owner = policy.choose(pool, route(prefix_key="k"), 0).replica
    loaded(owner, 50)
    decision = policy.choose(pool, route(prefix_key="k"), 0)
    assert decision.replica is not owner
    assert decision.reason == "prefix owner busy: least loaded"


def test_cost_latency_pours_load_into_the_cheapest_capacity_first():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    # per hour the A100-like replica is cheaper, but filled to the SLO the H100-like
    # one writes tokens for less: that is where load goes first
    fast = make_replica("fast", profile=FAST, cost="3.99")
    mid = make_replica("mid", profile=MID, cost="1.79")
    decision = policy.choose([mid, fast], route(), 0)
    assert decision.replica is fast
    assert decision.reason == "cheapest meeting slo"
    assert decision.predicted_ttft_s is not None and decision.predicted_tpot_s is not None


def test_cost_latency_fills_the_busy_one_of_equal_replicas_because_its_marginal_token_is_cheap():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    idle = make_replica("a-idle", profile=FAST, cost="3.99")
    busy = loaded(make_replica("b-busy", profile=FAST, cost="3.99"), 40)
    assert policy.choose([idle, busy], route(), 0).replica is busy


def test_cost_latency_spills_to_the_next_capacity_when_the_cheapest_would_break_the_slo():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    fast = loaded(make_replica("fast", profile=FAST, cost="3.99"), 2000)  # deep queue: TTFT too long
    mid = make_replica("mid", profile=MID, cost="1.79")
    assert policy.choose([fast, mid], route(), 0).replica is mid


def test_cost_latency_skips_a_cheap_replica_whose_tpot_would_break_the_slo():
    policy = make_policy("cost_latency", slo=SLO(ttft_ms=1000, tpot_ms=50))
    slow = make_replica("slow", profile=SLOW, cost="0.10")
    mid = make_replica("mid", profile=MID, cost="1.79")
    assert policy.choose([slow, mid], route(), 0).replica is mid


def test_a_request_too_big_for_any_replica_goes_to_the_fastest():
    policy = make_policy("cost_latency", slo=SLO(ttft_ms=300, tpot_ms=100))
    slow = make_replica("slow", profile=SLOW, cost="0.10")
    mid = make_replica("mid", profile=MID, cost="1.79")
    decision = policy.choose([slow, mid], route(prompt=4000), 0)
    assert decision.replica is mid
    assert decision.reason == "slo unmet: fastest"


def test_an_overloaded_pool_is_spread_by_load():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    # both far past their max batch: nothing meets the SLO, though the request is small
    fast = loaded(make_replica("fast", profile=FAST, cost="3.99"), 3000)
    mid = loaded(make_replica("mid", profile=MID, cost="1.79"), 1500)
    decision = policy.choose([fast, mid], route(), 0)
    assert decision.replica is mid
    assert decision.reason == "slo unmet: least loaded"


def test_max_ttft_preference_overrides_the_slo_ttft():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    fast = make_replica("fast", profile=FAST, cost="3.99")
    mid = make_replica("mid", profile=MID, cost="0.50")
    # 3000-token prompt: mid prefills in ~0.3 s, fast in ~0.1 s
    assert policy.choose([fast, mid], route(prompt=3000), 0).replica is mid
    tight = route(prompt=3000, preference=RoutingPreference(max_ttft_ms=200))
    assert policy.choose([fast, mid], tight, 0).replica is fast


def test_prefer_latency_takes_the_fastest_whatever_it_costs():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    fast = make_replica("fast", profile=FAST, cost="3.99")
    mid = make_replica("mid", profile=MID, cost="0.50")
    assert policy.choose([fast, mid], route(), 0).replica is mid
    decision = policy.choose([fast, mid], route(preference=RoutingPreference(prefer="latency")), 0)
    assert decision.replica is fast
    assert decision.reason == "prefer latency: fastest"


def test_prefer_cost_accepts_a_slower_replica_within_the_slack():
    policy = cost_latency(SLO(ttft_ms=1000, tpot_ms=100), headroom=0.8, cost_slack=1.5)
    slow = make_replica("slow", profile=SLOW, cost="0.05")  # TPOT ~95 ms: over 80 ms headroom
    mid = make_replica("mid", profile=MID, cost="1.79")
    loaded(slow, 23)
    assert policy.choose([slow, mid], route(), 0).replica is mid
    decision = policy.choose([slow, mid], route(preference=RoutingPreference(prefer="cost")), 0)
    assert decision.replica is slow
    assert decision.reason == "prefer cost: cheapest meeting slo"


def test_cost_latency_learns_that_a_replica_is_slower_than_its_profile():
    clock = FakeClock()
    policy = make_policy("cost_latency", slo=SLO(ttft_ms=1000, tpot_ms=30))
    mid = make_replica("mid", profile=MID, cost="0.50", clock=clock)
    fast = make_replica("fast", profile=FAST, cost="3.99", clock=clock)
    assert policy.choose([fast, mid], route(), 0).replica is mid
    # live traffic: mid's tokens come ~3x slower than its profile says (36 ms > 30 ms SLO)
    for _ in range(10):
        ticket = mid.telemetry.begin(100)
        clock.advance(0.06)
        mid.telemetry.first_token(ticket)
        clock.advance(0.036 * 9)
        mid.telemetry.finish(ticket, ok=True, output_tokens=10)
    assert mid.telemetry.tpot_calibration() == pytest.approx(0.036 / 0.0115, rel=0.01)
    assert policy.choose([fast, mid], route(), 0).replica is fast


def test_cost_latency_without_profile_or_data_assumes_the_replica_just_meets_slo():
    policy = make_policy("cost_latency", slo=SLO_DEFAULT)
    unknown = make_replica("unknown", profile=None, cost="0.08")
    fast = make_replica("fast", profile=FAST, cost="40.00")
    decision = policy.choose([unknown, fast], route(), 0)
    assert decision.replica is unknown
    assert decision.predicted_ttft_s is None
