"""The fleet benchmark's report: a markdown table for RESULTS.md and a plot of the day."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from loadtests.fleet_sim import FleetResult

_SHORT = {
    "nvidia-h100": "H100",
    "nvidia-a100": "A100",
    "nvidia-l4": "L4",
    "amd-mi300x": "MI300X",
    "ascend-910b": "910B",
    "kunlun-p800": "P800",
    "cpu-xeon-amx": "CPU",
}


def _chips(hours: Mapping[str, float]) -> str:
    return ", ".join(f"{_SHORT.get(c, c)} {h:.2f}" for c, h in hours.items()) or "-"


def markdown(report: dict[str, object]) -> str:
    """The report as a markdown section."""
    slo = report["slo"]
    first, last = report["minutes"]  # type: ignore[misc]
    lapse = report["lapse"]
    pools = ", ".join(
        f"{p['chip']} (max {p['max']}, ${p['cost_per_hour']}/h, cold start {p['cold_start_s']:g} s)"
        for p in report["pools"]  # type: ignore[union-attr]
    )
    lines = [
        "### Capacity that follows load: fleet strategies over a real day (simulated chips)",
        "",
        f"Pools of one ~8B model, **simulated** replicas with the profiles, prices and cited cold starts of "
        f"`backends/chips.py`: {pools}. Load: {report['load_source']}; minutes {first}-{last} of the day, each "
        f"minute compressed into {report['seconds_per_minute']:g} simulated s, the day's busiest minute scaled to "
        f"{report['peak_rps']:g} req/s, Poisson arrivals within a minute ({report['requests']} requests). "
        f"Time-lapse: every fleet timing (cold starts, planning interval, hysteresis, forecast and measurement "
        f"windows, autoscaler sync and stabilisation) is the real-life value / {lapse:g}"
        + (" (so cold starts keep their real proportion to the load's pace)" if lapse != 1 else
           " (real cold starts against a compressed day: a stress test)")
        + f"; per-request timings are real. SLO: TTFT <= {slo['ttft_ms']:g} ms and mean TPOT <= {slo['tpot_ms']:g} ms. "
        f"Headroom {report['headroom']:.0%} for every sized strategy. Cost: replica-seconds in every state but "
        "stopped x $/hour, per 1M output tokens; replica-hours are simulated hours.",
        "",
        (
            "| strategy | routing | $/1M out tok | vs offline optimum | SLO met | TTFT met | TPOT met | TPOT p99 ms "
            "| mean $/h | replica-h by chip | starts |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["strategies"].items():  # type: ignore[union-attr]
        lines.append(
            f"| {name} | {s['policy']} | {s['cost_per_mtok']:.3f} | {s['vs_offline_optimum']:.2f}x "
            f"| {s['slo_attainment'] * 100:.2f}% | {s['ttft_attainment'] * 100:.2f}% | {s['tpot_attainment'] * 100:.2f}% "
            f"| {s['tpot_p99_ms']:.0f} | {s['mean_cost_per_hour']:.2f} | {_chips(s['replica_hours_by_chip'])} "
            f"| {s['starts']} |"
        )
    lines.append(
        f"| *per-minute floor (each minute's cheapest mix, no cold starts)* | | "
        f"{report['per_window_floor_cost_per_mtok']:.3f} | | | | | | | | |"
    )
    lines += ["", "Targets:", ""]
    for t in report["targets"]:  # type: ignore[union-attr]
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        lines.append(f"- {state}: {t['target']} (measured {t['value']})")
    if report.get("planner_examples"):
        lines += ["", "Some of the planner's decisions, as it logged them:", ""]
        lines += [f"- {e}" for e in report["planner_examples"]]  # type: ignore[union-attr]
    lines += [
        "",
        (
            f"Machine: {report['machine']}. Command: `{report['command']}` ({report['wall_s']} s wall, "
            f"{report['date']}). Deterministic: the same command gives the same numbers."
        ),
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, object], timelines: Mapping[str, FleetResult], path: Path) -> None:
    """Load, the planner's replicas per chip, and $/hour of every strategy over the day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = report["minutes"][0]  # type: ignore[index]
    per_minute = float(report["seconds_per_minute"])  # type: ignore[arg-type]

    def hours(t: float) -> float:
        return (first + t / per_minute) / 60

    fig, (ax_load, ax_fleet, ax_cost) = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    planner = timelines["planner_least_outstanding"]
    xs = [hours(s.t) for s in planner.samples]
    ax_load.plot(xs, [s.arrivals_rps for s in planner.samples], lw=1, color="black")
    ax_load.set_ylabel("arrivals (req/s)")
    ax_load.set_title("Load: Bailian day 9, compressed; Poisson arrivals")

    chips = sorted({c for s in planner.samples for c in s.replicas_by_chip})
    stacks = [[s.replicas_by_chip.get(c, 0) for s in planner.samples] for c in chips]
    ax_fleet.stackplot(xs, stacks, labels=[_SHORT.get(c, c) for c in chips], step="post", alpha=0.8)
    oracle = timelines["offline_optimum"]
    ax_fleet.step([hours(s.t) for s in oracle.samples], [sum(s.replicas_by_chip.values()) for s in oracle.samples],
                  where="post", color="black", ls="--", lw=1, label="offline optimum (total)")
    ax_fleet.set_ylabel("replicas paid for")
    ax_fleet.set_title("The planner's fleet (least_outstanding routing), per chip")
    ax_fleet.legend(fontsize=8, ncol=4, loc="upper right")

    for name, result in timelines.items():
        if name.endswith("cost_latency") and not name.startswith("static") or name.startswith("reactive") and not name.endswith("_70"):
            continue
        ax_cost.step([hours(s.t) for s in result.samples], [s.cost_per_hour for s in result.samples],
                     where="post", lw=1, label=name)
    ax_cost.set_ylabel("$/hour of the fleet")
    ax_cost.set_xlabel("hour of the day")
    ax_cost.set_title("Fleet cost over the day")
    ax_cost.legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
