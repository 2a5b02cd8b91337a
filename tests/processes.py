"""Real gateway processes for multi-process tests (replica servers, shared-limit workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """``maas serve --config FILE`` in its own process, on a free port."""

    def __init__(self, config: dict[str, Any], workdir: Path, *, env: dict[str, str] | None = None) -> None:
        self.port = config.setdefault("server", {}).setdefault("port", free_port())
        config["server"].setdefault("host", "127.0.0.1")
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / f"gateway-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        # its `maas serve` record stays in this test's directory: other runs' CLIs must not find it
        self.env = {**os.environ, "MAAS_RUN_DIR": str(workdir / "run"), **(env or {})}
        # the checkout under test, whatever the working directory and the installed package
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), self.env.get("PYTHONPATH")) if p)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of what the gateway printed: what a failing test shows."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def start(self, *, extra_args: tuple[str, ...] = (), timeout: float = 60.0) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config_path), *extra_args],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: a card falling off the bus, or a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def simulated_replica_config(chip: str, *, model: str = "llama-3.1-8b-instruct", time_scale: float = 0.02, ledger: str) -> dict:
    """A one-replica simulated gateway to stand in for a remote `vllm serve` on some chip."""
    return {
        "server": {"allow_anonymous": True},
        "models": [{"name": model, "price": {"input_per_mtok": 0, "output_per_mtok": 0}}],
        "replicas": [{"id": f"{chip}-upstream", "model": model, "backend": "simulated", "chip": chip, "time_scale": time_scale}],
        "routing": {"policy": "round_robin"},
        "ledger": ledger,
        "limits": "memory",
    }
