"""The planner scales ``ray`` pools out and in, and a dead node's replicas are ejected and replaced."""

from __future__ import annotations

import time

import pytest
import ray

from tests.ray.gateways import active, events, on_loop, pool_members, ray_pool
from tests.ray.load import Load
from tests.ray_cluster import ChipCluster, l4_node, wait_for

#: short windows, so that a few seconds of load are a trend and a few quiet ones a lull
FAST_PLANNER = {
    "scale_in_after_s": 3.0, "min_up_s": 2.0,
    "load": {"bucket_s": 0.5, "rate_window_s": 4.0, "peak_span_s": 4.0, "peak_window_s": 20.0, "peak_z": 0.0,
             "window_s": 10.0, "mix_min_requests": 5},
    "forecast": {"level_halflife_s": 2.0, "trend_halflife_s": 10.0},
}


def test_planner_scales_a_ray_pool_out_under_load_and_in_after_it(cluster: ChipCluster, gateway_with) -> None:
    # a simulated L4 in real time: with ~30-token prompts and 32-token answers one replica sustains
    # ~1.5-2 req/s within the SLO, so 2 req/s (x 1.3 headroom) needs two and one suffices again after
    server = gateway_with([ray_pool("l4", "nvidia-l4", min=1, max=2, time_scale=1.0)], fleet=FAST_PLANNER)
    (first,) = wait_for(lambda: active(server, "l4"), timeout=120, what="the pool's first replica")

    load = Load(server.url, rate=2.0, max_tokens=32).start()
    try:
        both = wait_for(lambda: _exactly(2, active(server, "l4")), timeout=90,
                        what="a second replica started by the planner")
    finally:
        outcomes = load.stop()
    second = next(m for m in both if m["id"] != first["id"])
    assert cluster.chip_of(second["node"]) == "nvidia-l4" and second["node"] != first["node"]
    actuator = server.gateway.lifecycle.pools["l4"].actuator
    actors = on_loop(server, lambda: {m["id"]: actuator.where(m["id"]).actor.result() for m in both})

    stopped = wait_for(lambda: [e["replica"] for e in events(server, "l4") if e["event"] == "stopped"], timeout=90,
                       what="the pool to shrink back to one")
    scaled = [(e["replica"], e["event"]) for e in events(server, "l4")]
    assert ("l4-2", "start") in scaled
    assert [r for r, e in scaled if e == "retire"] == stopped  # drained, then stopped
    assert [m["id"] for m in pool_members(server, "l4")] == [r for r in actors if r not in stopped]
    with pytest.raises(ray.exceptions.RayActorError):  # the retired replica's actor is gone, its GPU free
        ray.get(actors[stopped[0]].until_stopped.remote(), timeout=30)
    assert outcomes and all(o.status == 200 for o in outcomes), [o for o in outcomes if o.status != 200][:3]


def test_killed_node_replicas_are_ejected_and_replaced_without_failed_requests(
    cluster: ChipCluster, gateway_with,
) -> None:
    cluster.add(l4_node("l4-spare"))  # the capacity lost with a node comes back on another L4 node
    server = gateway_with([
        ray_pool("l4", "nvidia-l4", time_scale=0.2),
        ray_pool("ascend", "ascend-910b", time_scale=0.2),
    ])
    (victim,) = wait_for(lambda: active(server, "l4"), timeout=120, what="an active l4 replica")
    wait_for(lambda: active(server, "ascend"), timeout=120, what="an active ascend replica")

    load = Load(server.url, workers=4).start()
    try:
        wait_for(lambda: load.served_by(victim["id"]) >= 10, timeout=60, what="load on the l4 replica")
        killed_at = time.time()
        cluster.kill_raylet(victim["node"])
        lost = wait_for(lambda: [e for e in events(server, "l4") if e["event"] == "lost"], timeout=60,
                        what="the dead node's replica to leave")
        assert lost[0]["replica"] == victim["id"]
        assert victim["id"] not in {m["id"] for m in pool_members(server, "l4")}
        (replacement,) = wait_for(lambda: [m for m in active(server, "l4") if m["id"] != victim["id"]], timeout=120,
                                  what="a replacement l4 replica")
        ready_at = next(e["at"] for e in events(server, "l4") if e["replica"] == replacement["id"] and e["event"] == "ready")
        wait_for(lambda: load.served_by(replacement["id"]) >= 5, timeout=60, what="load on the replacement")
    finally:
        outcomes = load.stop()

    assert cluster.chip_of(replacement["node"]) == "nvidia-l4" and replacement["node"] != victim["node"]
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, failed[:3]
    around = [o for o in outcomes if killed_at <= o.at <= ready_at]
    print(f"\nmeasured: node killed -> replica ejected {lost[0]['at'] - killed_at:.2f}s, "
          f"-> replacement serving {ready_at - killed_at:.2f}s; {len(outcomes)} non-streaming requests, "
          f"{len(around)} during the failover, {len(failed)} failed")


def _exactly(count: int, members: list[dict]) -> list[dict] | None:
    return members if len(members) == count else None
