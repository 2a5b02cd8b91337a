"""The ``maas`` CLI as an operator meets it: one way to name the config, the running gateway's ledger,
copyable replica ids with live timings, and one-line errors for mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.live_server import ADMIN_KEY, LiveServer, sim_config
from tests.processes import ROOT, GatewayProcess

MODEL = "llama-3.1-8b-instruct"
LONG_ID = "ascend-910b-rack-07-slot-3-replica-0123456789"


def maas(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MAAS_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "80", **(env or {})}
    full_env.setdefault("MAAS_RUN_DIR", str(cwd / "no-gateways-here"))
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, env=full_env, cwd=cwd,
        timeout=60, check=False,
    )


def _config_file(tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(sim_config(tmp_path, **overrides).model_dump(mode="json")))
    return path


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, result.stderr


# -- --config before or after the subcommand, and MAAS_CONFIG ----------------------------------------

@pytest.mark.parametrize(
    "place",
    [
        lambda c, *cmd: ["--config", c, *cmd],
        lambda c, *cmd: [cmd[0], "--config", c, *cmd[1:]],
        lambda c, *cmd: [*cmd, "--config", c],
    ],
    ids=["before-command", "after-command", "at-the-end"],
)
def test_config_is_accepted_anywhere_on_the_command_line(tmp_path: Path, place) -> None:
    config = str(_config_file(tmp_path))
    created = maas(*place(config, "keys", "create", "--tenant", "anywhere"))
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("sk-maas-")
    for command in (("keys", "list"), ("usage", "--group-by", "model"), ("invoice", "--tenant", "anywhere",
                                                                        "--month", "2026-01")):
        result = maas(*place(config, *command))
        assert result.returncode == 0, result.stderr
        assert f"ledger: sqlite:///{tmp_path}/ledger.db" in result.stderr  # says which ledger it used


def test_maas_config_environment_variable_names_the_config(tmp_path: Path) -> None:
    config = str(_config_file(tmp_path))
    assert maas("keys", "create", "--tenant", "from-env", env={"MAAS_CONFIG": config}).returncode == 0
    listed = maas("keys", "list", "--config", config, env={"COLUMNS": "250"})
    assert "from-env" in listed.stdout


# -- the running gateway's config and ledger ----------------------------------------------------------

@pytest.fixture(scope="module")
def running_gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("running")
    config = _process_config(workdir)
    config["ledger"] = "sqlite:///maas-data/running.db"  # relative: to the directory `maas serve` started in
    proc = GatewayProcess(config, workdir, env={"MAAS_ADMIN_KEY": ADMIN_KEY}).start()
    yield proc
    proc.stop()


def test_keys_created_without_a_config_work_on_the_running_gateway(
    running_gateway: GatewayProcess, tmp_path: Path
) -> None:
    # another directory, no --config: the README's flow
    created = maas("keys", "create", "--tenant", "readme-flow", cwd=tmp_path,
                   env={"MAAS_RUN_DIR": running_gateway.env["MAAS_RUN_DIR"]})
    assert created.returncode == 0, created.stderr
    ledger = running_gateway.workdir / "maas-data" / "running.db"
    assert f"ledger: sqlite:///{ledger}" in created.stderr
    assert running_gateway.url in created.stderr
    reply = httpx.post(
        running_gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {created.stdout.strip()}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    # the same config named from elsewhere still means the running gateway's ledger
    named = maas("keys", "list", "--config", str(running_gateway.config_path), cwd=tmp_path,
                 env={"MAAS_RUN_DIR": running_gateway.env["MAAS_RUN_DIR"], "COLUMNS": "250"})
    assert "readme-flow" in named.stdout and f"ledger: sqlite:///{ledger}" in named.stderr


def test_replicas_finds_the_running_gateway_without_a_url(running_gateway: GatewayProcess, tmp_path: Path) -> None:
    result = maas("replicas", cwd=tmp_path, env={"MAAS_RUN_DIR": running_gateway.env["MAAS_RUN_DIR"]})
    assert result.returncode == 0, result.stderr
    assert "h100-0" in result.stdout


def test_several_running_gateways_make_the_operator_choose(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    gateways = [GatewayProcess(_process_config(_mkdir(tmp_path / f"g{i}")), tmp_path / f"g{i}",
                               env={"MAAS_RUN_DIR": str(run_dir)}) for i in range(2)]
    try:
        for gateway in gateways:
            gateway.start()
        result = maas("keys", "list", cwd=tmp_path, env={"MAAS_RUN_DIR": str(run_dir)})
        _one_line_error(result, "2 gateways are running", "--config")
    finally:
        for gateway in gateways:
            gateway.stop()
    assert not list(run_dir.glob("*.json"))  # a gateway that exits takes its record with it


def _process_config(workdir: Path) -> dict:
    config = sim_config(workdir).model_dump(mode="json")
    del config["server"]["port"]  # GatewayProcess picks a free one
    return config


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- replicas: live timings and full ids ----------------------------------------------------------------

@pytest.fixture(scope="module")
def long_ids(tmp_path_factory) -> Iterator[LiveServer]:
    replicas = [{"id": LONG_ID, "model": MODEL, "backend": "simulated", "chip": "ascend-910b", "time_scale": 0.02}]
    server = LiveServer(sim_config(tmp_path_factory.mktemp("long-ids"), replicas=replicas)).start()
    yield server
    server.stop()


def test_replicas_shows_ttft_tpot_and_whole_ids_on_a_narrow_terminal(long_ids: LiveServer) -> None:
    client = openai.OpenAI(base_url=long_ids.url + "/v1", api_key=long_ids.create_key("timings"), max_retries=0)
    for _ in range(3):  # streams: they measure time to first token
        for _chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
        ):
            pass
    narrow = maas("replicas", "--url", long_ids.url, env={"COLUMNS": "60"})
    assert narrow.returncode == 0, narrow.stderr
    assert LONG_ID in narrow.stdout  # whole, on one line: copyable
    wide = maas("replicas", "--url", long_ids.url, env={"COLUMNS": "250"})
    cells = [c.strip() for c in next(line for line in wide.stdout.splitlines() if LONG_ID in line).split("│")]
    telemetry = long_ids.run(_telemetry(long_ids))
    assert float(cells[9]) == pytest.approx(telemetry["ttft_ms"], abs=0.06)
    assert float(cells[10]) == pytest.approx(telemetry["tpot_ms"], abs=0.06)


def _telemetry(server: LiveServer):
    async def read() -> dict:
        replica = server.gateway.registry.get(LONG_ID)
        assert replica is not None
        return replica.telemetry.snapshot()

    return read


# -- mistakes: one line, exit 2 ---------------------------------------------------------------------------

def test_operator_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    config = str(_config_file(tmp_path))
    _one_line_error(maas("usage", "--config", config, "--group-by", "bad"), "cannot group usage by 'bad'")
    _one_line_error(maas("usage", "--config", config, "--from", "yesterday"), "yesterday")
    _one_line_error(maas("keys", "--config", config, "create", "--tenant", "t", "--models", "gpt-9"), "gpt-9",
                    "llama-3.1-8b-instruct")
    _one_line_error(maas("keys", "--config", config, "create", "--tenant", "t", "--rpm", "-1"), "rpm")
    _one_line_error(maas("keys", "--config", config, "create", "--tenant", "t", "--rpm", str(2**63)), "rpm")
    _one_line_error(maas("keys", "--config", config, "create", "--tenant", "t", "--budget-usd", "lots"), "lots")
    _one_line_error(maas("invoice", "--config", config, "--tenant", "t", "--month", "last"), "last")
    unreachable = tmp_path / "unreachable.yaml"
    unreachable.write_text(yaml.safe_dump({**yaml.safe_load(Path(config).read_text()),
                                           "ledger": "postgresql://nobody@127.0.0.1:1/none"}))
    _one_line_error(maas("keys", "list", "--config", str(unreachable)), "cannot open the ledger")


def test_unknown_chip_in_the_config_is_a_config_error(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["replicas"][0]["chip"] = "abacus-9000"
    config.write_text(yaml.safe_dump(data))
    result = maas("serve", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "replicas.0" in result.stderr and "abacus-9000" in result.stderr


def test_workers_with_memory_limits_refuse_to_start(tmp_path: Path) -> None:
    config = str(_config_file(tmp_path))
    _one_line_error(maas("serve", "--config", config, "--workers", "2"), "limits: memory", "redis://")
