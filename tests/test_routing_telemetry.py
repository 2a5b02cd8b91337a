"""Replica telemetry, registry and scorecard."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from backends.base import EngineStats
from routing.registry import ReplicaRegistry, UnknownReplica
from routing.scorecard import Scorecard
from routing.telemetry import ReplicaTelemetry
from tests.fakes.routing import FakeClock, make_replica


def test_ewmas_follow_finished_streams():
    clock = FakeClock()
    t = ReplicaTelemetry(alpha=0.5, clock=clock)
    for ttft, tpot in ((0.2, 0.01), (0.4, 0.03)):
        ticket = t.begin(100)
        clock.advance(ttft)
        t.first_token(ticket)
        clock.advance(tpot * 10)
        t.finish(ticket, ok=True, output_tokens=11)
    assert t.ttft_s == pytest.approx(0.3)
    assert t.tpot_s == pytest.approx(0.02)
    assert t.latency_s == pytest.approx(0.5 * 0.3 + 0.5 * 0.7)
    assert t.output_tokens == pytest.approx(11)


def test_error_rate_rises_with_failures_and_decays_with_successes():
    t = ReplicaTelemetry(alpha=0.5, clock=FakeClock())
    for ok in (True, False, False):
        t.finish(t.begin(1), ok=ok)
    assert t.error_rate == pytest.approx(0.75)
    t.finish(t.begin(1), ok=True)
    assert t.error_rate == pytest.approx(0.375)
    assert t.failures == 2 and t.requests == 4


def test_abandoned_request_is_not_an_error_and_frees_its_slot():
    t = ReplicaTelemetry(clock=FakeClock())
    ticket = t.begin(50, 2)
    assert t.in_flight == 1 and t.in_flight_sequences == 2 and t.prefill_backlog_tokens == 50
    t.finish(ticket, ok=None)
    assert t.in_flight == 0 and t.in_flight_sequences == 0 and t.prefill_backlog_tokens == 0
    assert t.requests == 0 and t.error_rate == 0.0
    assert t.finish(ticket, ok=True) == 0.0  # ending twice is a no-op
    assert t.in_flight == 0


def test_concurrent_requests_split_replica_busy_time_between_them():
    clock = FakeClock()
    t = ReplicaTelemetry(clock=clock)
    a = t.begin(10)
    clock.advance(1.0)  # a alone: 1 s
    b = t.begin(10)
    clock.advance(2.0)  # a and b: 1 s each
    share_a = t.finish(a, ok=True)
    clock.advance(1.0)  # b alone: 1 s
    share_b = t.finish(b, ok=True)
    assert share_a == pytest.approx(2.0)
    assert share_b == pytest.approx(2.0)
    assert t.busy_seconds == pytest.approx(4.0)
    clock.advance(10.0)  # idle time is nobody's
    assert t.busy_seconds == pytest.approx(4.0)


def test_outstanding_uses_engine_stats_when_they_see_more_than_we_sent():
    t = ReplicaTelemetry(clock=FakeClock())
    t.begin(1, 3)
    assert t.outstanding_sequences() == 3
    t.record_engine(EngineStats(running=8, waiting=4))
    assert t.outstanding_sequences() == 12


def test_snapshot_is_json_able():
    import orjson

    replica = make_replica("a")
    replica.telemetry.begin(10)
    snap = replica.snapshot()
    assert orjson.loads(orjson.dumps(snap))["telemetry"]["in_flight"] == 1
    assert snap["simulated"] is True and snap["cost_per_hour"] == "2.00"


async def test_registry_indexes_replicas_by_id_and_model():
    a, b = make_replica("a", model="m1"), make_replica("b", model="m2")
    registry = ReplicaRegistry([a, b])
    assert registry.get("a") is a and registry.get("zz") is None
    assert registry.for_model("m2") == [b]
    assert registry.models() == ["m1", "m2"]
    with pytest.raises(ValueError):
        registry.add(make_replica("a"))
    with pytest.raises(UnknownReplica):
        registry.drain("zz")


async def test_remove_waits_for_in_flight_requests_to_finish():
    replica = make_replica("a")
    registry = ReplicaRegistry([replica], poll_s=0.001)
    ticket = replica.telemetry.begin(10)

    async def finish_soon() -> None:
        await asyncio.sleep(0.01)
        replica.telemetry.finish(ticket, ok=True)

    task = asyncio.create_task(finish_soon())
    assert await registry.remove("a", timeout_s=2.0) == 0
    await task
    assert registry.get("a") is None and replica.draining


async def test_remove_reports_requests_still_in_flight_after_the_timeout():
    replica = make_replica("a")
    registry = ReplicaRegistry([replica], poll_s=0.001)
    replica.telemetry.begin(10)
    assert await registry.remove("a", timeout_s=0.01) == 1
    assert registry.all() == []


def test_scorecard_rows_per_chip_with_cost_at_measured_throughput():
    card = Scorecard(window=100)
    # 1 replica-hour at $3.60 for 2M tokens: $1.80 per 1M tokens
    card.record("nvidia-h100", True, 0.1, 1_000_000, 10.0, Decimal("3.60"), replica_seconds=1800.0)
    card.record("nvidia-h100", True, 0.3, 1_000_000, 10.0, Decimal("3.60"), replica_seconds=1800.0)
    card.record("nvidia-h100", False, None, 0, 1.0, Decimal("3.60"), replica_seconds=0.0)
    card.record("ascend-910b", True, 0.2, 100, 2.0, Decimal("1.50"))
    rows = {r["chip"]: r for r in card.rows()}
    h100 = rows["nvidia-h100"]
    assert h100["requests"] == 3
    assert h100["success_rate"] == pytest.approx(0.6667)
    assert h100["usd_per_mtok_output"] == "1.8000"
    assert h100["ttft_p50_ms"] == 100.0 and h100["ttft_p95_ms"] == 300.0
    assert h100["output_tok_s"] == pytest.approx(100_000.0)
    assert rows["ascend-910b"]["output_tok_s"] == 50.0


def test_scorecard_keeps_only_the_most_recent_window_per_chip():
    card = Scorecard(window=3)
    for ttft in (9.0, 9.0, 0.1, 0.1, 0.1):
        card.record("c", True, ttft, 10, 1.0, Decimal("1"))
    (row,) = card.rows()
    assert row["requests"] == 3 and row["ttft_p95_ms"] == 100.0


def test_tpot_calibration_compares_with_the_profile_at_the_batch_the_request_really_decoded_in():
    from tests.fakes.routing import LinearProfile

    clock = FakeClock()
    profile = LinearProfile(prefill_tok_s=1e12, step_1_s=0.010, step_32_s=0.041, max_batch=64)
    replica = make_replica("a", profile=profile, clock=clock)
    telemetry = replica.telemetry
    ticket = telemetry.begin(10)
    clock.advance(0.01)
    telemetry.first_token(ticket)
    # nine more sequences join right after: the batch is 10, the step 19 ms
    others = [telemetry.begin(10) for _ in range(9)]
    clock.advance(0.019 * 10)
    telemetry.finish(ticket, ok=True, output_tokens=11)
    # a chip that is exactly as fast as its profile is not "slow" because its batch grew
    assert telemetry.tpot_calibration() == pytest.approx(1.0, rel=0.02)
    for other in others:
        telemetry.finish(other, ok=None)


def test_prompt_token_rate_is_not_under_counted_while_the_window_fills():
    clock = FakeClock()
    t = ReplicaTelemetry(clock=clock)
    for _ in range(10):
        t.begin(1000)
        clock.advance(0.1)
    assert t.prompt_tokens_per_s() == pytest.approx(10_000, rel=0.15)


def test_efficient_point_is_the_largest_batch_within_the_tpot_limit():
    from routing.capacity import efficient_point
    from tests.fakes.routing import LinearProfile

    profile = LinearProfile(prefill_tok_s=10_000, step_1_s=0.010, step_32_s=0.041, max_batch=256)
    point = efficient_point(profile, prompt_tokens=1000, output_tokens=200, tpot_limit_s=0.08)
    assert point is not None and point.tpot_s <= 0.08
    bigger = efficient_point(profile, prompt_tokens=1000, output_tokens=200, tpot_limit_s=0.2)
    assert bigger is not None and bigger.batch > point.batch and bigger.requests_per_s > point.requests_per_s
    assert efficient_point(profile, prompt_tokens=1000, output_tokens=200, tpot_limit_s=0.005) is None
