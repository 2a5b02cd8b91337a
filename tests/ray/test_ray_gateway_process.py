"""`maas serve` with a ray pool: it joins the cluster itself (as a node's driver, or by Ray Client),
and the replicas it placed end with it, whether it stops or is killed."""

from __future__ import annotations

import httpx
import pytest
import ray

from tests.processes import GatewayProcess
from tests.ray.gateways import MODEL, ray_pool
from tests.ray_cluster import ChipCluster, wait_for


def _gpus_all_free() -> bool:
    return ray.available_resources().get("GPU", 0) == ray.cluster_resources().get("GPU", 0)


@pytest.mark.parametrize("how", ["node", "client"])
def test_gateway_process_places_replicas_on_the_cluster_it_names(cluster: ChipCluster, tmp_path, how: str) -> None:
    address = cluster.address if how == "node" else cluster.client_address
    gateway = GatewayProcess({
        "server": {"allow_anonymous": True}, "models": [{"name": MODEL, "aliases": ["default"]}],
        "pools": [ray_pool("l4", "nvidia-l4", address=address)], "fleet": {"interval_s": 0.5},
        "ledger": f"sqlite:///{tmp_path}/ledger.db", "limits": "memory",
    }, tmp_path).start()
    try:
        def answered() -> httpx.Response | None:
            reply = httpx.post(gateway.url + "/v1/chat/completions", timeout=30, json={
                "model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
            return reply if reply.status_code == 200 else None

        reply = wait_for(answered, timeout=120, every=0.2, what="the gateway's ray replica to answer")
        where = (reply.headers["x-maas-replica"], reply.headers["x-maas-chip"])
        assert where == ("l4-1", "nvidia-l4"), f"answered by {where}; the gateway's log:\n{gateway.log_tail()}"
        assert not _gpus_all_free()
    finally:
        if how == "node":
            gateway.kill()  # a driver that dies takes its actors with it: nothing is left holding a GPU
        else:
            gateway.stop()
    wait_for(_gpus_all_free, timeout=60, what="the replica's GPU to be free again")
