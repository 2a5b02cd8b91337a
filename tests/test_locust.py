"""The documented headless locust command, for 20 s against a simulated pool: zero failures, reports written."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.processes import ROOT, GatewayProcess

pytestmark = pytest.mark.slow

RUN_SECONDS = 20


def _config(workdir: Path) -> dict:
    sim = yaml.safe_load((ROOT / "examples" / "simulated.yaml").read_text())
    for replica in sim["replicas"]:
        replica["time_scale"] = 0.02  # the chips' real timings, 50x faster
    sim["server"] = {"allow_anonymous": False, "log_level": "warning"}
    sim["ledger"] = f"sqlite:///{workdir}/locust.db"
    return sim


def _create_key(config_path: Path, tenant: str, workdir: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "keys", "--config", str(config_path), "create", "--tenant", tenant],
        cwd=workdir, capture_output=True, text=True, timeout=60, check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    workdir = tmp_path_factory.mktemp("locust")
    gateway = GatewayProcess(_config(workdir), workdir)
    keys = [_create_key(gateway.config_path, tenant, workdir) for tenant in ("locust-a", "locust-b")]
    gateway.start()
    out = workdir / "out"
    out.mkdir()
    try:
        command = [
            sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
            "-u", "20", "-r", "10", "-t", f"{RUN_SECONDS}s", "--host", gateway.url,
            "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
        ]
        env = {**os.environ, "MAAS_KEYS": ",".join(keys), "MAAS_MAX_TOKENS": "16", "MAAS_MAX_OUTPUT_TOKENS": "64",
               "MAAS_MAX_PROMPT_TOKENS": "512"}
        proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_SECONDS + 90)
        usage = {
            key: httpx.get(gateway.url + "/v1/usage", headers={"authorization": f"Bearer {key}"}, timeout=10).json()
            for key in keys
        }
        yield {"proc": proc, "out": out, "usage": usage}
    finally:
        gateway.stop()


def _stats(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (out / "locust_stats.csv").open(newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def test_headless_run_exits_cleanly(run: dict) -> None:
    proc = run["proc"]
    # locust exits 1 when any request failed
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_reports_are_written(run: dict) -> None:
    out = run["out"]
    for name in ("locust_stats.csv", "locust_failures.csv", "locust_stats_history.csv", "locust.html"):
        assert (out / name).stat().st_size > 0, name
    assert "<html" in (out / "locust.html").read_text()[:2000].lower()


def test_every_user_class_ran_without_a_failure(run: dict) -> None:
    stats = _stats(run["out"])
    for entry in (("POST", "chat"), ("POST", "chat stream"), ("POST", "completion"), ("TTFT", "chat stream")):
        assert int(stats[entry]["Request Count"]) > 0, entry
        assert int(stats[entry]["Failure Count"]) == 0, entry
    aggregated = stats[("", "Aggregated")]
    assert int(aggregated["Failure Count"]) == 0
    assert int(aggregated["Request Count"]) >= 100


def test_time_to_first_token_is_shorter_than_the_whole_stream(run: dict) -> None:
    stats = _stats(run["out"])
    assert float(stats[("TTFT", "chat stream")]["50%"]) < float(stats[("POST", "chat stream")]["50%"])


def test_load_was_spread_over_both_keys(run: dict) -> None:
    for key, body in run["usage"].items():
        assert sum(row["requests"] for row in body["data"]) > 0, key
