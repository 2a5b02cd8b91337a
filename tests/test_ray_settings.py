"""Ray pools without a cluster: chip -> Ray resources, the ``ray:`` block, the actor's backend, and
what the lifecycle does when a replica's actor dies (the cluster tests are in ``tests/ray``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml

from backends.actuators import ray as ray_actuator
from backends.actuators.base import ActuatorError
from backends.actuators.ray import RayActuator
from backends.actuators.ray_backend import ActorBackend
from backends.actuators.ray_placement import placement_for
from backends.base import GenerationRequest, ReplicaUnavailable
from backends.settings import RayPoolSettings, ReplicaConfig
from gateway.config import ConfigError, load_config, parse_config
from gateway.lifecycle import Lifecycle
from routing.registry import ReplicaRegistry
from routing.replica import ReplicaState
from tests.fakes.actuators import MortalActuator


@pytest.mark.parametrize(("chip", "device", "accelerator"), [
    ("nvidia-h100", "GPU", "H100"), ("nvidia-l4", "GPU", "L4"), ("nvidia-a100", "GPU", "A100"),
    ("amd-mi300x", "GPU", "AMD-Instinct-MI300X-OAM"), ("ascend-910b", "NPU", "Ascend910B"),
])
def test_chips_ray_detects_ask_for_their_device_and_accelerator_type(chip: str, device: str, accelerator: str) -> None:
    needed = placement_for(chip, RayPoolSettings(accelerators=2)).required()
    assert needed == {"CPU": 1.0, device: 2.0, f"accelerator_type:{accelerator}": 0.001}


@pytest.mark.parametrize("chip", ["kunlun-p800", "hygon-k100ai", "cpu-avx2", "cpu-xeon-amx"])
def test_chips_ray_does_not_know_ask_for_a_custom_chip_resource(chip: str) -> None:
    placement = placement_for(chip, RayPoolSettings(num_cpus=4, memory_gib=2))
    assert placement.required() == {"CPU": 4.0, f"chip:{chip}": 1.0, "memory": 2.0 * 1024**3}
    assert placement.actor_options()["resources"] == {f"chip:{chip}": 1.0}


def test_an_alias_is_placed_as_the_chip_it_names() -> None:
    assert "chip:cpu-xeon-amx" in placement_for("cpu", RayPoolSettings()).required()


def test_overrides_replace_the_accelerator_type_or_the_whole_mapping() -> None:
    sub_model = placement_for("ascend-910b", RayPoolSettings(accelerator_type="Ascend910B3")).required()
    assert "accelerator_type:Ascend910B3" in sub_model and "accelerator_type:Ascend910B" not in sub_model
    custom = placement_for("nvidia-l4", RayPoolSettings(resources={"GPU": 1, "rack:eu-1": 1}))
    assert custom.required() == {"CPU": 1.0, "GPU": 1.0, "rack:eu-1": 1.0}
    assert custom.actor_options()["num_gpus"] == 1 and custom.actor_options()["resources"] == {"rack:eu-1": 1}
    assert placement_for("nvidia-l4", RayPoolSettings(strategy="pack")).actor_options()["scheduling_strategy"] == "DEFAULT"


def _config(**pool: object):
    return parse_config({"models": [{"name": "m"}], "pools": [{
        "name": "p", "model": "m", "chip": "nvidia-l4", "backend": "simulated", "actuator": "ray", **pool}]}, env={})


@pytest.mark.parametrize(("pool", "message"), [
    ({"ray": {"num_cpus": -1}}, "pools.0.ray.num_cpus"),
    ({"ray": {"adress": "ray://head:10001"}}, "pools.0.ray.adress: Extra inputs are not permitted"),
    ({"ray": {"resources": {"CPU": 2}}}, "'CPU' is set with num_cpus / memory_gib"),
    ({"ray": {"resources": {"chip:x": 0}}}, "'chip:x' must be a positive amount"),
    ({"backend": "openai", "replica": {"url": "http://x:1/v1"}}, "a ray pool runs vllm or simulated replicas"),
    ({"actuator": "simulated", "ray": {}}, "'ray' settings are for pools whose actuator is ray"),
])
def test_bad_ray_settings_fail_at_load_naming_the_field(pool: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid config") as failure:
        _config(**pool)
    assert message in str(failure.value)


def test_the_ray_example_and_the_docs_config_are_valid_configs() -> None:
    root = Path(__file__).resolve().parent.parent
    assert [p.actuator for p in load_config(root / "examples" / "ray.yaml", env={}).pools] == ["ray"] * 3
    block = re.search(r"```yaml\n(.*?)```", (root / "docs" / "ray.md").read_text(), re.DOTALL)
    assert block is not None
    pools = yaml.safe_load(block.group(1))["pools"]
    (pool,) = parse_config({"models": [{"name": "llama-3.1-8b-instruct"}], "pools": pools}, env={}).pools
    assert pool.ray is not None and pool.ray.memory_gib == 8


def test_ray_settings_default_to_this_nodes_cluster_one_cpu_and_spread() -> None:
    settings = _config().pools[0].ray or RayPoolSettings()
    assert (settings.address, settings.namespace, settings.num_cpus, settings.strategy) == ("auto", "maas", 1.0, "spread")


_ABORTED = ConnectionAbortedError(
    "Initialization failure from server:\nTraceback (most recent call last):\n  File \"proxier.py\", line 772\n"
    "RuntimeError: Proxy failed to Connect to backend! Check `ray_client_server.err`"
)


class _Cluster:
    """Stands in for ``ray.init``: answers each connection attempt with the next outcome."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *outcomes: Exception | None) -> None:
        self.outcomes, self.calls = list(outcomes), 0
        monkeypatch.setattr(ray_actuator.ray, "init", self.init)
        monkeypatch.setattr(ray_actuator.ray, "is_initialized", lambda: False)
        monkeypatch.setattr(ray_actuator, "_CONNECT_RETRY_PAUSE_S", 0.0)

    def init(self, **kwargs: object) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


async def test_a_session_the_cluster_aborted_is_asked_for_again(monkeypatch) -> None:
    cluster = _Cluster(monkeypatch, _ABORTED, None)
    await RayActuator(serve=None)._connect(RayPoolSettings(address="ray://127.0.0.1:10001"))  # type: ignore[arg-type]
    assert cluster.calls == 2


async def test_connecting_gives_up_after_three_aborted_sessions_with_the_servers_reason(monkeypatch) -> None:
    cluster = _Cluster(monkeypatch, _ABORTED, _ABORTED, _ABORTED, None)
    with pytest.raises(ActuatorError) as failure:
        await RayActuator(serve=None)._connect(RayPoolSettings(address="ray://127.0.0.1:10001"))  # type: ignore[arg-type]
    assert cluster.calls == 3
    assert str(failure.value) == (
        "cannot connect to the Ray cluster at ray://127.0.0.1:10001: Initialization failure from server: "
        "RuntimeError: Proxy failed to Connect to backend! Check `ray_client_server.err`"
    )


async def test_a_cluster_that_cannot_be_reached_fails_the_start_at_once(monkeypatch) -> None:
    cluster = _Cluster(monkeypatch, ConnectionError("Could not find any running Ray instance."), None)
    with pytest.raises(ActuatorError, match="Could not find any running Ray instance"):
        await RayActuator(serve=None)._connect(RayPoolSettings(address="127.0.0.1:6379"))  # type: ignore[arg-type]
    assert cluster.calls == 1


async def test_actor_backend_is_unavailable_until_connected_to_its_actor() -> None:
    backend = ActorBackend(ReplicaConfig(id="r", model="m", backend="vllm", chip="cpu-avx2"), token="t")
    assert backend.capabilities.extra_params  # what the engine inside honours, not every OpenAI field
    assert not await backend.health()
    with pytest.raises(ReplicaUnavailable, match="not serving yet"):
        await backend.generate(GenerationRequest(request_id="1", model="m", kind="completion", prompt="hi"))


async def test_lost_replica_leaves_routing_at_once_and_its_capacity_is_replanned() -> None:
    config = parse_config({"models": [{"name": "m"}], "pools": [{
        "name": "l4", "model": "m", "chip": "nvidia-l4", "backend": "simulated", "actuator": "simulated",
        "max": 2, "replica": {"time_scale": 0.01}}]}, env={})
    actuator = MortalActuator()
    lifecycle = Lifecycle(config, ReplicaRegistry(), {"simulated": actuator})
    replanned: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    lifecycle.on_lost = replanned.set_result
    lifecycle.enact("l4", 2, 0)
    await asyncio.wait_for(actuator.until_running(2), 5)
    assert lifecycle.status("l4").active == 2

    actuator.kill("l4-1")
    assert await asyncio.wait_for(replanned, 5) == "m"
    assert lifecycle.registry.get("l4-1") is None and [r.id for r in lifecycle.members("l4")] == ["l4-2"]
    assert actuator.stopped == ["l4-1"]
    lost = [e for e in lifecycle.events if e.event == "lost"]
    assert [(e.replica, e.reason) for e in lost] == [("l4-1", "The actor died because its node has died.")]
    assert lifecycle.registry.get("l4-2").state is ReplicaState.ACTIVE

    lifecycle.enact("l4", 2, 0)  # the plan, made again: the lost capacity is started anew
    assert [e.event for e in lifecycle.events][-1] == "start"
    await lifecycle.close()
