"""A real local Ray cluster for the tests: a head and worker nodes, each offering one chip kind.

Started by the tests themselves (``ray.cluster_utils.Cluster``: a GCS, and one
raylet per node, each a separate set of processes on this machine) inside the
test run's own network namespace, where loopback is the only interface: Ray
binds some of its agents to the machine's non-loopback address otherwise, which
tests must never use. ``tests/test_ray_cluster.py`` starts that namespace.

Nodes advertise chips the way real ones do: an NVIDIA L4 node offers ``GPU`` and
``accelerator_type:L4`` (what Ray detects on such a card), an Ascend node
``NPU`` and ``accelerator_type:Ascend910B``, a CPU node the custom resource
``chip:cpu-avx2``. Each has a small CPU and memory quota: the machine has two
cores. Every process the cluster starts carries the run's temporary directory
on its command line, so the tests can check that none is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the environment variable that names the run's Ray temporary directory (set by the namespace runner)
TEMP_DIR_ENV = "MAAS_TEST_RAY_TMPDIR"
_OBJECT_STORE = 80 * 1024 * 1024  # Ray's minimum is 75 MiB
_GIB = 1024**3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_own_network_namespace() -> bool:
    """Whether loopback is this process's only network interface (a namespace of the test's own)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@dataclass(frozen=True, slots=True)
class ChipNode:
    """A worker node offering one chip kind."""

    name: str
    chip: str
    num_cpus: float = 1
    num_gpus: float = 0
    resources: dict[str, float] = field(default_factory=dict)
    memory_gib: float = 2


def l4_node(name: str) -> ChipNode:
    return ChipNode(name, "nvidia-l4", num_gpus=1, resources={"accelerator_type:L4": 1})


NODES = (
    ChipNode("cpu", "cpu-avx2", num_cpus=2, resources={"chip:cpu-avx2": 1}, memory_gib=8),
    l4_node("l4-a"),
    l4_node("l4-b"),
    ChipNode("ascend", "ascend-910b", resources={"NPU": 2, "accelerator_type:Ascend910B": 1}),
)


class ChipCluster:
    """The cluster, this process connected to it as a Ray driver (the gateway under test shares it)."""

    def __init__(self, temp_dir: str | None = None) -> None:
        # short: Ray's socket paths under it must stay within the 107-byte limit of Unix sockets
        given = temp_dir or os.environ.get(TEMP_DIR_ENV)
        self._owns_temp_dir = given is None
        self.temp_dir = given or tempfile.mkdtemp(prefix="mr-", dir="/tmp")
        self._cluster: Any = None
        #: Ray node id -> the node as the test declared it
        self.nodes: dict[str, ChipNode] = {}
        self._handles: dict[str, Any] = {}
        self.started_in_s = 0.0

    def start(self, nodes: tuple[ChipNode, ...] = NODES) -> ChipCluster:
        import ray
        from ray.cluster_utils import Cluster

        began = time.monotonic()
        # Ray's other files (the current cluster's address, for `address="auto"`) go there too,
        # for this process and every one it starts: nothing lands in the machine's /tmp/ray
        os.environ["RAY_TMPDIR"] = self.temp_dir
        os.makedirs(os.path.join(self.temp_dir, "ray"), exist_ok=True)
        self.client_port = _free_port()
        self._cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "temp_dir": self.temp_dir, "object_store_memory": _OBJECT_STORE,
            "ray_client_server_port": self.client_port,  # Ray Client (ray://), for gateways outside the cluster
            # Ray's own failure detection as it ships: nothing tuned for the tests
        })
        for node in nodes:
            self.add(node)
        ray.init(address=self._cluster.address, log_to_driver=False)
        self.started_in_s = time.monotonic() - began
        return self

    @property
    def address(self) -> str:
        """The GCS address (``host:port``) drivers on a node of the cluster connect to."""
        return self._cluster.address

    @property
    def client_address(self) -> str:
        """The Ray Client address, for a gateway outside the cluster."""
        return f"ray://127.0.0.1:{self.client_port}"

    def add(self, node: ChipNode) -> str:
        """Start a worker node; returns its Ray node id."""
        handle = self._cluster.add_node(
            num_cpus=node.num_cpus, num_gpus=node.num_gpus, resources=dict(node.resources),
            memory=int(node.memory_gib * _GIB), object_store_memory=_OBJECT_STORE, temp_dir=self.temp_dir,
        )
        self.nodes[handle.node_id] = node
        self._handles[handle.node_id] = handle
        return handle.node_id

    def chip_of(self, node_id: str | None) -> str | None:
        node = self.nodes.get(node_id or "")
        return None if node is None else node.chip

    def kill_raylet(self, node_id: str) -> None:
        """The node's raylet dies at once (SIGKILL), as when its machine or card fails."""
        raylet = self._handles[node_id].all_processes["raylet"][0].process
        raylet.send_signal(signal.SIGKILL)
        # reaped at once: a dead raylet left as a zombie of this process still looks alive to its workers
        raylet.wait()

    def stop(self) -> None:
        import ray

        ray.shutdown()
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = None
        if self._owns_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def leftover_processes(self) -> list[str]:
        """Processes of this cluster still running (their command lines name its temporary directory)."""
        return processes_naming(self.temp_dir)


def processes_naming(text: str, *, environment: bool = False) -> list[str]:
    """``pid: command`` of every other running process whose command line (or, with ``environment``,
    whose environment: inherited by every child, e.g. vLLM's engine process) contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = (entry / "environ").read_bytes().decode(errors="replace") if environment else command
        except OSError:
            continue  # gone meanwhile
        if text in where and command:
            found.append(f"{entry.name}: {command[:160]}")
    return found


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05) -> Any:
    """Check ``condition`` until it returns something truthy (another thread's or process's state); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
