"""The fleet benchmark's quick run, as documented: its report has what the issue asks for.

Structure only (the numbers are the benchmark's to report): every strategy has its
cost, attainment and replica-hours; the planner costs no more than the static
fleets; the offline optimum is a lower bound for every strategy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.slow

STRATEGIES = (
    "static_cost_latency",
    "static_least_outstanding",
    "reactive_hpa_cost_latency_70",
    "reactive_hpa_least_outstanding_70",
    "planner_cost_latency",
    "planner_least_outstanding",
    "offline_optimum",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    run = subprocess.run(
        [sys.executable, "-m", "loadtests.bench_fleet", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| planner_least_outstanding |" in run.stdout
    return orjson.loads(Path(out).read_bytes())


def test_every_strategy_reports_cost_attainment_and_replica_hours(report: dict):
    strategies = report["strategies"]
    for name in STRATEGIES:
        stats = strategies[name]
        assert stats["cost_per_mtok"] > 0
        assert 0.0 <= stats["slo_attainment"] <= 1.0
        assert stats["replica_hours"] > 0
        assert sum(stats["replica_hours_by_chip"].values()) == pytest.approx(stats["replica_hours"], abs=1e-3)
    assert report["lower_bound_cost_per_mtok"] == strategies["offline_optimum"]["cost_per_mtok"]


def test_the_planner_costs_no_more_than_a_fleet_sized_for_the_peak(report: dict):
    strategies = report["strategies"]
    for planner in ("planner_cost_latency", "planner_least_outstanding"):
        assert strategies[planner]["cost_per_mtok"] <= strategies["static_cost_latency"]["cost_per_mtok"]
        assert strategies[planner]["cost_per_mtok"] <= strategies["static_least_outstanding"]["cost_per_mtok"]


def test_the_lower_bound_is_below_every_strategy(report: dict):
    bound = report["lower_bound_cost_per_mtok"]
    assert report["per_window_floor_cost_per_mtok"] <= bound
    for stats in report["strategies"].values():
        assert bound <= stats["cost_per_mtok"]


def test_static_fleets_never_start_or_stop_and_dynamic_ones_do(report: dict):
    strategies = report["strategies"]
    assert strategies["static_cost_latency"]["starts"] == strategies["static_cost_latency"]["stops"] == 0
    assert strategies["planner_least_outstanding"]["starts"] > 0
    assert strategies["planner_least_outstanding"]["hours_by_state"]["starting"] > 0


def test_the_report_names_its_load_machine_command_and_targets(report: dict):
    assert "Bailian" in report["load_source"]
    assert report["command"].startswith("python -m loadtests.bench_fleet --quick")
    assert report["machine"]
    assert {t["target"].split(" ")[0] for t in report["targets"]} == {"planner_cost_latency", "planner_least_outstanding"}
