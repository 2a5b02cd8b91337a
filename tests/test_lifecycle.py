"""The lifecycle: replicas start, serve, park, drain and stop as the plan says, each exactly once."""

from __future__ import annotations

import asyncio

import pytest

from backends.actuators import ExternalActuator, LocalActuator, SimulatedActuator
from billing.database import open_database
from gateway.config import parse_config
from gateway.lifecycle import Lifecycle
from routing.registry import ReplicaRegistry
from routing.replica import ReplicaState

MODEL = "llama-3.1-8b-instruct"


def config(tmp_path, **pool):
    pools = [{"name": "l4", "model": MODEL, "chip": "nvidia-l4", "backend": "simulated", "actuator": "simulated",
              "min": 0, "max": 4, "cold_start_s": 5.0, "replica": {"time_scale": 0.01}, **pool},
             {"name": "ext", "model": MODEL, "chip": "nvidia-h100", "backend": "openai", "actuator": "external",
              "max": 3}]
    return parse_config({
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.2", "output_per_mtok": "0.6"}}],
        "pools": pools,
        "ledger": f"sqlite:///{tmp_path}/ledger.db",
    }, env={})


@pytest.fixture
async def lifecycle(tmp_path):
    cfg = config(tmp_path)
    db = await open_database(cfg.ledger)
    life = Lifecycle(cfg, ReplicaRegistry(), {"simulated": SimulatedActuator(), "local": LocalActuator(),
                                             "external": ExternalActuator()}, hours=db.replica_hours)
    yield life
    await life.close()
    await db.close()


async def started(life: Lifecycle, pool: str) -> None:
    """Wait for every start (and drain) under way to finish."""
    await life.settled()


async def test_a_start_is_starting_until_its_cold_start_ends_then_active_and_timed(lifecycle):
    lifecycle.enact("l4", 2, 0)
    assert lifecycle.status("l4").starting == 2
    assert [r.state for r in lifecycle.members("l4")] == [ReplicaState.STARTING] * 2
    assert not any(r.routable(0.0) for r in lifecycle.members("l4"))
    await started(lifecycle, "l4")
    status = lifecycle.status("l4")
    assert (status.starting, status.active) == (0, 2)
    # 5 s x time_scale 0.01
    assert 0.04 <= status.measured_cold_start_s < 1.0
    assert [e.event for e in lifecycle.events].count("ready") == 2


async def test_scale_in_drains_before_stopping_and_in_flight_work_finishes(lifecycle):
    lifecycle.enact("l4", 2, 0)
    await started(lifecycle, "l4")
    busy = max(lifecycle.members("l4"), key=lambda r: r.id)
    ticket = busy.telemetry.begin(10, 1)  # a request in flight on the busier replica
    lifecycle.enact("l4", 1, 0)
    # the idle one leaves first; the busy one is kept
    assert [r.id for r in lifecycle.members("l4") if r.state is ReplicaState.ACTIVE] == [busy.id]
    lifecycle.enact("l4", 0, 0)
    assert busy.state is ReplicaState.DRAINING and not busy.routable(0.0)
    assert lifecycle.registry.get(busy.id) is busy  # still registered while its request runs
    busy.telemetry.finish(ticket, ok=True, output_tokens=1)
    await lifecycle.settled()
    assert busy.state is ReplicaState.STOPPED and lifecycle.registry.get(busy.id) is None
    status = lifecycle.status("l4")
    assert (status.starting, status.active, status.standby, status.draining) == (0, 0, 0, 0)


async def test_a_start_that_is_no_longer_wanted_is_cancelled_not_finished(lifecycle):
    lifecycle.enact("l4", 1, 0)
    (replica,) = lifecycle.members("l4")
    lifecycle.enact("l4", 0, 0)
    await lifecycle.settled()
    assert replica.state is ReplicaState.STOPPED
    assert lifecycle.registry.get(replica.id) is None
    assert [e.event for e in lifecycle.events if e.replica == replica.id] == ["start", "cancel", "stopped"]


async def test_surplus_goes_to_standby_when_the_plan_keeps_one_warm_and_wakes_first(lifecycle):
    lifecycle.enact("l4", 2, 0)
    await started(lifecycle, "l4")
    lifecycle.enact("l4", 1, 1)
    assert (lifecycle.status("l4").active, lifecycle.status("l4").standby) == (1, 1)
    standby = next(r for r in lifecycle.members("l4") if r.state is ReplicaState.STANDBY)
    assert not standby.routable(0.0) and standby.routable(0.0, standby=True)
    lifecycle.enact("l4", 2, 0)
    assert standby.state is ReplicaState.ACTIVE  # woken, not a new start
    assert lifecycle.status("l4").starting == 0


async def test_an_external_pool_starts_nothing_and_drains_what_it_no_longer_wants(lifecycle):
    assert lifecycle.enact("ext", 2, 0)[0].kind == "start"
    assert lifecycle.members("ext") == []  # the published desired count is the request
    from gateway.config import ReplicaConfig

    spec = ReplicaConfig(id="pod-a", model=MODEL, backend="openai", chip="nvidia-h100", url="http://127.0.0.1:9/v1",
                         pool="ext", connect_timeout_s=0.2)
    replica = await lifecycle.register(spec)
    assert replica.state is ReplicaState.ACTIVE and lifecycle.status("ext").active == 1
    lifecycle.enact("ext", 0, 0)
    # drained, left for the outside system to remove (its DELETE drains and forgets it)
    assert replica.state is ReplicaState.DRAINING and lifecycle.registry.get("pod-a") is replica
    assert await lifecycle.remove("pod-a", timeout_s=1) == 0
    assert lifecycle.registry.get("pod-a") is None


async def test_registering_into_an_unknown_pool_is_refused(lifecycle):
    from gateway.config import ReplicaConfig

    spec = ReplicaConfig(id="x", model=MODEL, backend="openai", chip="nvidia-h100", url="http://127.0.0.1:9/v1",
                         pool="nope")
    with pytest.raises(ValueError, match="no pool 'nope'"):
        await lifecycle.register(spec)


async def test_paid_time_is_written_as_replica_hours_starting_time_included(lifecycle):
    lifecycle.enact("l4", 1, 0)
    await started(lifecycle, "l4")
    await lifecycle.account()
    (row,) = await lifecycle._hours.cost(since=None, until=None, group_by="pool")  # noqa: SLF001
    assert row.group == "l4"
    assert row.seconds >= 0.05  # the cold start is paid
    assert row.cost_nano_usd > 0
