"""The replica pods' registrar sidecar against real gateways, over real HTTP.

Two gateways stand for two gateway pods; a third gateway over a simulated replica stands for
the pod's vLLM engine (it speaks the same OpenAI protocol, /v1/models included). The
registrar is the real script, run as a process and stopped with SIGTERM as Kubernetes does.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import ADMIN_KEY, LiveServer, sim_config
from tests.registrar_process import RegistrarProcess

MODEL = "llama-3.1-8b-instruct"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # ~38 ms per output token: a 40-token stream stays in flight for about 1.5 s
    replica = {"id": "engine-l4", "model": MODEL, "backend": "simulated", "chip": "nvidia-l4", "time_scale": 0.5}
    live = LiveServer(sim_config(tmp_path_factory.mktemp("engine"), server={"allow_anonymous": True},
                                 replicas=[replica])).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    started = [LiveServer(sim_config(tmp_path_factory.mktemp(f"gateway{i}"))).start() for i in range(2)]
    # the gateways' own simulated replicas of MODEL take no traffic: requests go to registered pods
    for live in started:
        for replica in live.gateway.registry.all():
            if replica.model == MODEL:
                httpx.post(f"{live.url}/admin/replicas/{replica.id}/drain", headers=ADMIN, timeout=10).raise_for_status()
    yield started
    for live in started:
        live.stop()


@pytest.fixture
def start_registrar(engine: LiveServer, gateways: list[LiveServer], tmp_path: Path) -> Iterator[Callable[..., RegistrarProcess]]:
    running: list[RegistrarProcess] = []

    def start(replica_id: str, **overrides: str) -> RegistrarProcess:
        env = {
            "MAAS_ADMIN_KEY": ADMIN_KEY,
            "MAAS_GATEWAYS": ",".join(g.url for g in gateways),
            "MAAS_REPLICA_ID": replica_id,
            "MAAS_REPLICA_MODEL": MODEL,
            "MAAS_REPLICA_CHIP": "nvidia-l4",
            "MAAS_REPLICA_URL": f"{engine.url}/v1",
            "MAAS_ENGINE_READY_URL": f"{engine.url}/v1/models",
            "MAAS_RECONCILE_S": "0.3",
            "MAAS_DRAIN_TIMEOUT_S": "20",
            "MAAS_DONE_FILE": str(tmp_path / replica_id / "deregistered"),
            **overrides,
        }
        process = RegistrarProcess(env)
        running.append(process)
        return process

    yield start
    for process in running:  # each deregisters its pod before the next test
        if process.process.poll() is None:
            process.stop()
            process.wait(timeout=30)
        process.close()


def listed(gateway: LiveServer) -> dict[str, dict]:
    response = httpx.get(f"{gateway.url}/admin/replicas", headers=ADMIN, timeout=10)
    response.raise_for_status()
    return {r["id"]: r for r in response.json()["data"]}


def test_registers_with_every_gateway_once_the_engine_serves_its_model(
    start_registrar: Callable[..., RegistrarProcess], gateways: list[LiveServer]
) -> None:
    registrar = start_registrar("vllm-nvidia-l4-5c7f9-a1b2c")
    registrar.expect("engine_ready")
    for gateway in gateways:
        registrar.expect("registered", gateway=gateway.url)
        entry = listed(gateway)["vllm-nvidia-l4-5c7f9-a1b2c"]
        assert entry["chip"] == "nvidia-l4"
    # a tenant's request through a gateway reaches the registered pod
    key = gateways[0].create_key("tenant-k8s-registrar-3e1d")
    response = httpx.post(f"{gateways[0].url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
                          timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-maas-replica"] == "vllm-nvidia-l4-5c7f9-a1b2c"


def test_a_gateway_that_lost_the_replica_gets_it_back_within_a_round(
    start_registrar: Callable[..., RegistrarProcess], gateways: list[LiveServer]
) -> None:
    registrar = start_registrar("vllm-nvidia-l4-5c7f9-d3e4f")
    registrar.expect("registered", gateway=gateways[1].url)
    # a restarted gateway pod starts with an empty registry
    httpx.delete(f"{gateways[1].url}/admin/replicas/vllm-nvidia-l4-5c7f9-d3e4f", headers=ADMIN,
                 timeout=10).raise_for_status()
    # "registered" is logged for a 201 only (409 = still there): this one is a re-registration
    registrar.expect("registered", gateway=gateways[1].url, timeout=10)
    assert "vllm-nvidia-l4-5c7f9-d3e4f" in listed(gateways[1])


def test_stop_drains_and_removes_the_replica_only_after_the_stream_in_flight_finished(
    start_registrar: Callable[..., RegistrarProcess], gateways: list[LiveServer], tmp_path: Path
) -> None:
    replica_id = "vllm-nvidia-l4-5c7f9-g5h6i"
    registrar = start_registrar(replica_id)
    for gateway in gateways:
        registrar.expect("registered", gateway=gateway.url)
    key = gateways[0].create_key("tenant-k8s-registrar-8a2c")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "count"}], "max_tokens": 40, "stream": True}
    chunks = []
    with httpx.stream("POST", f"{gateways[0].url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"}) as response:
        assert response.headers["x-maas-replica"] == replica_id
        lines = response.iter_lines()
        chunks.append(next(line for line in lines if line.startswith("data: {")))
        registrar.stop()  # the pod is being deleted, the stream is mid-way
        deregistering = registrar.expect("deregistering")
        chunks += [line for line in lines if line.startswith("data: ")]
    stream_ended = time.monotonic()
    assert chunks[-1] == "data: [DONE]"
    finish = [json.loads(c[6:])["choices"][0].get("finish_reason") for c in chunks[:-1] if json.loads(c[6:])["choices"]]
    assert finish[-1] == "length", "the stream ran to its end, it was not cut"
    assert deregistering["at"] < stream_ended, "the removal started while the stream was in flight"
    removed = registrar.expect("removed", gateway=gateways[0].url)
    assert removed["in_flight_cut"] == "0"
    registrar.expect("removed", gateway=gateways[1].url)
    registrar.expect("deregistered")
    assert registrar.wait() == 0
    assert (tmp_path / replica_id / "deregistered").is_file()
    for gateway in gateways:
        assert replica_id not in listed(gateway)


def test_a_pod_whose_engine_never_serves_is_never_registered_and_stops_cleanly(
    start_registrar: Callable[..., RegistrarProcess], gateways: list[LiveServer], engine: LiveServer
) -> None:
    # the engine lists other models only: it does not serve the one the gateway would ask for
    registrar = start_registrar("vllm-nvidia-l4-5c7f9-j7k8l", MAAS_REPLICA_UPSTREAM_MODEL="meta-llama/not-loaded")
    registrar.expect("waiting_for_engine")
    registrar.stop()
    registrar.expect("deregistered")
    assert registrar.wait() == 0
    assert not any(e["event"] == "registered" for e in registrar.seen)
    for gateway in gateways:
        assert "vllm-nvidia-l4-5c7f9-j7k8l" not in listed(gateway)


def test_a_refused_registration_is_reported_and_retried(
    start_registrar: Callable[..., RegistrarProcess], gateways: list[LiveServer]
) -> None:
    # the engine serves MODEL, but the pod registers it under a name no gateway knows
    registrar = start_registrar("vllm-nvidia-l4-5c7f9-m9n0p", MAAS_REPLICA_MODEL="other-modl",
                                MAAS_REPLICA_UPSTREAM_MODEL=MODEL)
    first = registrar.expect("refused", gateway=gateways[0].url)
    assert first["status"] == "404" and "other-modl" in first["message"]
    registrar.expect("refused", gateway=gateways[0].url)  # and again on the next round
    assert "vllm-nvidia-l4-5c7f9-m9n0p" not in listed(gateways[0])


def test_settings_missing_a_variable_exit_with_its_name(tmp_path: Path) -> None:
    process = RegistrarProcess({"MAAS_ADMIN_KEY": ADMIN_KEY, "MAAS_GATEWAYS": "http://127.0.0.1:9"})
    event = process.expect("bad_settings")
    assert "MAAS_REPLICA_ID" in event["error"]
    assert process.wait() == 2


def test_engine_prestop_returns_once_the_registrar_is_done(tmp_path: Path) -> None:
    done = tmp_path / "deregistered"
    waiter = RegistrarProcess({"MAAS_DONE_FILE": str(done), "MAAS_DRAIN_TIMEOUT_S": "5"}, command="wait-deregistered")
    with pytest.raises(subprocess.TimeoutExpired):  # still waiting: no done file yet
        waiter.wait(timeout=0.5)
    done.write_text("1\n")
    assert waiter.wait(timeout=10) == 0
