"""Router: failover before the first byte, never after; refusals are immediate."""

from __future__ import annotations

import asyncio

import pytest

from backends.base import (
    ChoiceDelta,
    ReplicaUnavailable,
    StreamChunk,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.config import RoutingConfig
from routing.errors import NoReplicaAvailable, PreferenceUnsatisfiable
from routing.policies.presets import round_robin
from routing.settings import SLO
from routing.preferences import RoutingPreference
from routing.registry import ReplicaRegistry
from routing.replica import ReplicaState
from routing.router import RouteRequest, Router
from tests.fakes.routing import FakeClock, ScriptedBackend, completion, make_replica, request


class RecordingObserver:
    def __init__(self) -> None:
        self.decisions: list[tuple[str, str, str]] = []
        self.failures: list[tuple[str, str]] = []
        self.unserved_models: list[str] = []

    def decision(self, policy, replica, reason) -> None:
        self.decisions.append((policy, replica.id, reason))

    def attempt_failed(self, replica, error) -> None:
        self.failures.append((replica.id, error.code))

    def unserved(self, model) -> None:
        self.unserved_models.append(model)


def build(*replicas, clock=None, observer=None, sleep=None, **config):
    clock = clock or FakeClock()
    router = Router(
        ReplicaRegistry(list(replicas)),
        round_robin(SLO()),
        RoutingConfig(**config),
        clock=clock,
        sleep=sleep or asyncio.sleep,
        observer=observer,
    )
    return router


class Waits:
    """The router's sleep on a fake clock: records each wait and moves the clock by it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.seconds = clock, []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        self.clock.advance(seconds)


def route(**kw) -> RouteRequest:
    return RouteRequest(model="m", prompt_tokens=kw.pop("prompt_tokens", 10), max_tokens=16, **kw)


async def test_retryable_error_fails_over_to_another_replica():
    clock = FakeClock()
    a = make_replica("a", backend=ScriptedBackend([ReplicaUnavailable("engine dead")]), clock=clock)
    b = make_replica("b", clock=clock)
    observer = RecordingObserver()
    routed = await build(a, b, clock=clock, observer=observer).generate(request(), route())
    assert routed.replica is b
    assert routed.attempts == 2
    assert observer.failures == [("a", "replica_unavailable")]
    assert [d[1] for d in observer.decisions] == ["a", "b"]
    assert a.breaker.consecutive_failures == 1
    assert a.telemetry.failures == 1 and a.telemetry.in_flight == 0
    assert b.telemetry.requests == 1 and b.telemetry.in_flight == 0


async def test_rejected_request_is_not_retried():
    a = make_replica("a", backend=ScriptedBackend([UpstreamRejected("bad schema", param="messages")]))
    b = make_replica("b")
    with pytest.raises(UpstreamRejected):
        await build(a, b).generate(request(), route())
    assert b.backend.calls == 0
    assert a.breaker.consecutive_failures == 0


async def test_rate_limited_replica_is_marked_busy_for_retry_after():
    clock = FakeClock()
    a = make_replica("a", backend=ScriptedBackend([UpstreamRateLimited("slow down", retry_after=7)]), clock=clock)
    b = make_replica("b", clock=clock)
    router = build(a, b, clock=clock)
    routed = await router.generate(request(), route())
    assert routed.replica is b
    assert a.busy_until == clock.now + 7
    assert not a.routable(clock.now)
    assert a.breaker.state() == "closed"
    # while a is busy every request goes to b
    for _ in range(3):
        assert (await router.generate(request(), route())).replica is b
    clock.advance(7)
    assert a.routable(clock.now)


async def test_all_replicas_down_raises_no_replica_available_at_once_with_retry_after():
    clock = FakeClock()
    a = make_replica("a", clock=clock, breaker_failures=1, cooldown_s=5)
    b = make_replica("b", clock=clock)
    a.breaker.record_failure()
    clock.advance(2)
    b.busy_until = clock.now + 10
    with pytest.raises(NoReplicaAvailable) as caught:
        await build(a, b, clock=clock).generate(request(), route())
    assert caught.value.retry_after == pytest.approx(3.0)
    assert a.backend.calls == b.backend.calls == 0


@pytest.mark.parametrize("unroutable_for", ["breaker", "busy"])
async def test_a_request_that_failed_waits_for_the_soonest_untried_replica_within_its_deadline(unroutable_for):
    clock = FakeClock()
    a = make_replica("a", backend=ScriptedBackend([ReplicaUnavailable("engine dead")]), clock=clock)
    b = make_replica("b", clock=clock, breaker_failures=1, cooldown_s=2)
    c = make_replica("c", clock=clock, breaker_failures=1, cooldown_s=5)
    if unroutable_for == "breaker":  # b and c failed moments ago: both cool down
        b.breaker.record_failure()
        c.breaker.record_failure()
    else:  # both answered 429 with a Retry-After
        b.busy_until, c.busy_until = clock.now + 2, clock.now + 5
    waits = Waits(clock)
    routed = await build(a, b, c, clock=clock, sleep=waits).generate(request(), route())
    assert (routed.replica, routed.attempts, waits.seconds) == (b, 2, [2.0])
    assert c.backend.calls == 0


async def test_a_request_that_failed_is_not_held_for_a_replica_that_comes_back_after_its_deadline():
    clock = FakeClock()
    a = make_replica("a", backend=ScriptedBackend([ReplicaUnavailable("engine dead")]), clock=clock)
    b = make_replica("b", clock=clock, breaker_failures=1, cooldown_s=31)
    b.breaker.record_failure()
    waits = Waits(clock)
    with pytest.raises(ReplicaUnavailable, match="engine dead"):
        await build(a, b, clock=clock, sleep=waits, deadline_s=30).generate(request(), route())
    assert waits.seconds == [] and b.backend.calls == 0


async def test_a_request_that_failed_does_not_wait_for_replicas_already_tried_or_stopped():
    clock = FakeClock()
    a = make_replica("a", backend=ScriptedBackend(default=ReplicaUnavailable("down")), clock=clock, breaker_failures=1)
    b = make_replica("b", clock=clock)
    b.state = ReplicaState.DRAINING
    waits = Waits(clock)
    with pytest.raises(ReplicaUnavailable):
        await build(a, b, clock=clock, sleep=waits).generate(request(), route())
    assert waits.seconds == [] and a.backend.calls == 1


async def test_draining_replicas_are_not_routable_and_give_no_retry_hint():
    a = make_replica("a")
    router = build(a)
    router.registry.drain("a")
    with pytest.raises(NoReplicaAvailable) as caught:
        await router.generate(request(), route())
    assert caught.value.retry_after is None


async def test_unknown_model_raises_no_replica_available():
    with pytest.raises(NoReplicaAvailable):
        await build(make_replica("a")).generate(request(), RouteRequest(model="other", prompt_tokens=1, max_tokens=1))


async def test_attempts_stop_at_max_attempts_and_raise_last_error():
    replicas = [
        make_replica(name, backend=ScriptedBackend(default=ReplicaUnavailable(f"{name} down")))
        for name in ("a", "b", "c", "d")
    ]
    with pytest.raises(ReplicaUnavailable):
        await build(*replicas, max_attempts=3).generate(request(), route())
    assert sum(r.backend.calls for r in replicas) == 3


async def test_each_replica_is_tried_at_most_once_per_request():
    a = make_replica("a", backend=ScriptedBackend(default=UpstreamTimeout("slow")))
    b = make_replica("b", backend=ScriptedBackend(default=ReplicaUnavailable("down")))
    with pytest.raises(ReplicaUnavailable):
        await build(a, b, max_attempts=5).generate(request(), route())
    assert a.backend.calls == 1 and b.backend.calls == 1


class ClockAdvancingBackend(ScriptedBackend):
    def __init__(self, clock: FakeClock, seconds: float, error: Exception) -> None:
        super().__init__(default=error)
        self.clock, self.seconds = clock, seconds

    async def generate(self, request):
        self.clock.advance(self.seconds)
        return await super().generate(request)


async def test_deadline_stops_further_attempts():
    clock = FakeClock()
    a = make_replica("a", backend=ClockAdvancingBackend(clock, 31.0, UpstreamTimeout("no answer")), clock=clock)
    b = make_replica("b", clock=clock)
    with pytest.raises(UpstreamTimeout):
        await build(a, b, clock=clock, deadline_s=30).generate(request(), route())
    assert b.backend.calls == 0


async def test_stream_first_chunk_wait_is_bounded_by_the_deadline():
    slow = make_replica("a", backend=ScriptedBackend(first_chunk_delay_s=5.0))
    router = Router(ReplicaRegistry([slow]), round_robin(SLO()), RoutingConfig(deadline_s=0.05))
    with pytest.raises(UpstreamTimeout):
        await asyncio.wait_for(router.open_stream(request(), route()), timeout=2.0)
    assert slow.backend.closed_streams == 1
    assert slow.breaker.consecutive_failures == 1
    assert slow.telemetry.in_flight == 0


async def test_stream_error_before_first_chunk_fails_over():
    a = make_replica("a", backend=ScriptedBackend([ReplicaUnavailable("connection refused")]))
    b = make_replica("b")
    stream = await build(a, b).open_stream(request(), route())
    chunks = [chunk async for chunk in stream]
    assert stream.replica is b and stream.attempts == 2
    assert "".join(d.text for c in chunks for d in c.deltas) == "w0 w1 w2 "
    assert stream.ttft_s is not None and stream.latency_s is not None
    assert b.telemetry.requests == 1 and b.telemetry.in_flight == 0


async def test_stream_error_after_first_chunk_is_never_retried():
    broken = [StreamChunk([ChoiceDelta(0, "partial", tokens=1)]), ReplicaUnavailable("card dropped")]
    a = make_replica("a", backend=ScriptedBackend([broken]))
    b = make_replica("b")
    router = build(a, b)
    stream = await router.open_stream(request(), route())
    received = []
    with pytest.raises(ReplicaUnavailable):
        async for chunk in stream:
            received.append(chunk)
    assert [c.deltas[0].text for c in received] == ["partial"]
    assert b.backend.calls == 0
    assert a.breaker.consecutive_failures == 1
    assert a.telemetry.failures == 1 and a.telemetry.in_flight == 0
    row = router.scorecard.rows()[0]
    assert row["success_rate"] == 0.0


async def test_stream_closed_early_aborts_upstream_and_is_not_a_failure():
    a = make_replica("a")
    stream = await build(a).open_stream(request(), route())
    await stream.__anext__()
    await stream.aclose()
    assert a.backend.closed_streams == 1
    assert a.telemetry.in_flight == 0
    assert a.telemetry.failures == 0 and a.telemetry.requests == 0
    assert stream.latency_s is not None


async def test_request_counts_in_flight_on_its_replica_until_it_ends():
    a = make_replica("a")
    router = build(a)
    stream = await router.open_stream(request(), route(n=2))
    assert a.telemetry.in_flight == 1 and a.telemetry.in_flight_sequences == 2
    async for _ in stream:
        pass
    assert a.telemetry.in_flight == 0 and a.telemetry.in_flight_sequences == 0


async def test_breaker_opens_after_consecutive_failures_and_router_routes_around():
    clock = FakeClock()
    a = make_replica("a", backend=ScriptedBackend(default=ReplicaUnavailable("down")), clock=clock, breaker_failures=2)
    b = make_replica("b", clock=clock)
    router = build(a, b, clock=clock)
    for _ in range(4):
        assert (await router.generate(request(), route())).replica is b
    assert a.breaker.state() == "open"
    assert a.backend.calls == 2


async def test_half_open_breaker_lets_one_probe_through_and_success_closes_it():
    clock = FakeClock()
    a = make_replica("a", clock=clock, breaker_failures=1, cooldown_s=5)
    a.breaker.record_failure()
    router = build(a, clock=clock)
    with pytest.raises(NoReplicaAvailable):
        await router.generate(request(), route())
    clock.advance(5)
    stream = await router.open_stream(request(), route())
    # the probe is out: nobody else gets through until it answers
    with pytest.raises(NoReplicaAvailable):
        await router.generate(request(), route())
    async for _ in stream:
        pass
    assert a.breaker.state() == "closed"
    assert (await router.generate(request(), route())).replica is a


async def test_chip_preference_routes_only_to_matching_chips():
    a = make_replica("a", chip="nvidia-h100")
    b = make_replica("b", chip="ascend-910b")
    router = build(a, b)
    pref = RoutingPreference(chips=("ascend",))
    for _ in range(3):
        assert (await router.generate(request(), route(preference=pref))).replica is b


async def test_chip_preference_for_a_chip_the_model_lacks_is_refused_as_bad_request():
    router = build(make_replica("a", chip="nvidia-h100"))
    with pytest.raises(PreferenceUnsatisfiable) as caught:
        await router.generate(request(), route(preference=RoutingPreference(chips=("kunlun-p800",))))
    assert caught.value.status == 400
    assert "nvidia-h100" in caught.value.message


async def test_chip_preference_whose_replicas_are_all_busy_is_unavailable_with_retry_hint():
    clock = FakeClock()
    a = make_replica("a", chip="nvidia-h100", clock=clock)
    b = make_replica("b", chip="ascend-910b", clock=clock)
    b.busy_until = clock.now + 4
    with pytest.raises(PreferenceUnsatisfiable) as caught:
        await build(a, b, clock=clock).generate(request(), route(preference=RoutingPreference(chips=("ascend-910b",))))
    assert caught.value.status == 503
    assert caught.value.retry_after == pytest.approx(4.0)


async def test_cancelled_request_releases_the_replica_without_blaming_it():
    gate = asyncio.Event()

    class Hanging(ScriptedBackend):
        async def generate(self, request):
            await gate.wait()
            return completion()

    a = make_replica("a", backend=Hanging())
    task = asyncio.create_task(build(a).generate(request(), route()))
    await asyncio.sleep(0)
    assert a.telemetry.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.telemetry.in_flight == 0 and a.telemetry.failures == 0


async def test_scorecard_records_each_successful_request_by_chip():
    a = make_replica("a", chip="nvidia-h100")
    router = build(a)
    await router.generate(request(), route())
    stream = await router.open_stream(request(), route())
    async for _ in stream:
        pass
    (row,) = router.scorecard.rows()
    assert row["chip"] == "nvidia-h100" and row["requests"] == 2 and row["success_rate"] == 1.0
    assert row["output_tokens"] == 2 + 3


async def test_empty_stream_is_a_success_with_no_chunks():
    a = make_replica("a", backend=ScriptedBackend([[]]))
    stream = await build(a).open_stream(request(), route())
    assert [c async for c in stream] == []
    assert a.telemetry.in_flight == 0 and a.telemetry.requests == 1


@pytest.mark.parametrize("state", [ReplicaState.STARTING, ReplicaState.DRAINING, ReplicaState.STOPPED, ReplicaState.STANDBY])
async def test_only_active_replicas_take_requests_while_one_is(state):
    active, other = make_replica("a"), make_replica("b")
    other.state = state
    router = build(active, other)
    for _ in range(6):
        assert (await router.generate(request(), route())).replica is active
    assert other.backend.calls == 0


async def test_a_warm_standby_takes_requests_when_no_active_replica_is_left():
    active, standby = make_replica("a"), make_replica("s")
    standby.state = ReplicaState.STANDBY
    active.state = ReplicaState.DRAINING
    observer = RecordingObserver()
    routed = await build(active, standby, observer=observer).generate(request(), route())
    assert routed.replica is standby
    assert observer.decisions[-1][2] == "standby overflow"


async def test_a_request_that_failed_on_the_last_active_replica_fails_over_to_a_warm_standby():
    clock = FakeClock()
    active = make_replica("a", backend=ScriptedBackend([ReplicaUnavailable("engine dead")]), clock=clock)
    standby = make_replica("s", clock=clock)
    standby.state = ReplicaState.STANDBY
    observer = RecordingObserver()
    waits = Waits(clock)
    routed = await build(active, standby, clock=clock, observer=observer, sleep=waits).generate(request(), route())
    assert (routed.replica, routed.attempts, waits.seconds) == (standby, 2, [])
    assert [(d[1], d[2]) for d in observer.decisions][-1] == ("s", "standby overflow")


async def test_a_model_with_nothing_running_is_refused_and_the_fleet_is_told():
    stopped = make_replica("a")
    stopped.state = ReplicaState.STOPPED
    observer = RecordingObserver()
    with pytest.raises(NoReplicaAvailable):
        await build(stopped, observer=observer).generate(request(), route())
    assert observer.unserved_models == ["m"]
