"""Routing benchmark: every policy on a mixed-chip pool, replaying a real trace.

A deterministic discrete-event simulation (loadtests.routing_sim) drives the
service's own policy objects (routing.policies.make_policy) on simulated replicas
of one ~8B model on seven chip kinds, with the chip profiles of backends.chips
(sources in shared/data/chips.md). Arrivals, prompt and output lengths come from
the Azure LLM inference trace 2023 (conversation), rescaled to three load levels.

Cost model: a replica costs its $/hour only while it has work (idle replicas are
scaled in); cost per 1M output tokens = sum(busy s x $/h) / output tokens. No real
engine restarts between two requests, so that saving is not collectible: each
policy is also priced in replica-hours (every replica of the fixed pool paid for the
whole run, as the operator pays it); ``bench_fleet`` is where capacity follows load. The
lower bound fills the load fractionally into the cheapest capacity first, each chip
at its most efficient batch that still meets the TPOT SLO (a fluid model: no
queueing, no burstiness), so no policy can beat it.

    python -m loadtests.bench_routing --quick --json OUT.json     # < 1 minute
    python -m loadtests.bench_routing                             # full trace, table + plot
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson

from backends.chips import ChipProfile, chip_profile
from gateway.config import SLO
from loadtests.machine import describe_machine
from loadtests.routing_sim import PoolMember, SimResult, TraceRequest, load_trace, rescale, run_simulation
from routing.policies import POLICY_NAMES, make_policy

TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "azure_conv_2023.csv"
TRACE_SOURCE = (
    "Azure LLM inference trace 2023, conversation service (Patel et al., Splitwise, ISCA 2024; "
    "Azure/AzurePublicDataset, CC-BY-4.0), processed copy from microsoft/vidur "
    "data/processed_traces/splitwise_conv.csv (MIT)"
)
#: (chip, replicas): one ~8B model on every chip kind the brief names
POOL: tuple[tuple[str, int], ...] = (
    ("nvidia-h100", 2),
    ("nvidia-a100", 2),
    ("nvidia-l4", 3),
    ("ascend-910b", 2),
    ("amd-mi300x", 1),
    ("kunlun-p800", 2),
    ("cpu-xeon-amx", 1),
)
#: load levels as fractions of the pool's SLO capacity (fluid model)
LOADS: tuple[tuple[str, float], ...] = (("low", 0.15), ("medium", 0.40), ("high", 0.75))
QUICK_REQUESTS = 3000
OUT_DIR = Path(__file__).resolve().parent / "routing"


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A chip's most efficient steady state under the SLO (fluid model)."""

    chip: str
    batch: int
    rate_rps: float
    usd_per_request: float


def operating_point(profile: ChipProfile, prompt: float, output: float, slo: SLO) -> OperatingPoint | None:
    """The batch that maximises requests/s with mean TPOT (decode stretched by the
    prefill share) and prefill TTFT within the SLO; None if no batch meets it."""
    prefill = profile.prefill_time_s(round(prompt))
    best: OperatingPoint | None = None
    for batch in range(1, profile.max_batch + 1):
        step = profile.step_time_s(batch)
        rate = 1.0 / (output * step / batch + prefill)
        tpot = step / (1.0 - rate * prefill)
        if tpot > slo.tpot_ms / 1000 or prefill + step > slo.ttft_ms / 1000:
            continue
        if best is None or rate > best.rate_rps:
            best = OperatingPoint(profile.name, batch, rate, float(profile.cost_per_hour) / 3600 / rate)
    return best


def pool_capacity_rps(pool: Sequence[PoolMember], prompt: float, output: float, slo: SLO) -> float:
    """Requests/s the whole pool sustains within the SLO (fluid model)."""
    total = 0.0
    for member in pool:
        point = operating_point(member.profile, prompt, output, slo)
        total += member.count * (point.rate_rps if point else 0.0)
    return total


def lower_bound_cost_per_mtok(
    pool: Sequence[PoolMember], rate_rps: float, prompt: float, output: float, slo: SLO
) -> float:
    """USD per 1M output tokens with the load poured into the cheapest capacity first."""
    return _fill_usd_per_s(pool, rate_rps, prompt, output, slo) / (rate_rps * output) * 1e6


def windowed_lower_bound_cost_per_mtok(
    pool: Sequence[PoolMember], replay: Sequence[TraceRequest], prompt: float, output: float, slo: SLO,
    window_s: float = 60.0,
) -> float:
    """The same bound applied to each ``window_s`` of the replay at its own rate.

    The trace's rate moves (bursts), and pouring cheapest-first is convex in the
    rate, so this is higher than the whole-run bound yet still one no policy beats.
    """
    counts: dict[int, int] = {}
    for r in replay:
        counts[int(r.arrival_s // window_s)] = counts.get(int(r.arrival_s // window_s), 0) + 1
    usd = sum(_fill_usd_per_s(pool, n / window_s, prompt, output, slo) * window_s for n in counts.values())
    return usd / (len(replay) * output) * 1e6


def _fill_usd_per_s(pool: Sequence[PoolMember], rate_rps: float, prompt: float, output: float, slo: SLO) -> float:
    points = [
        (p, m.count) for m in pool if (p := operating_point(m.profile, prompt, output, slo)) is not None
    ]
    points.sort(key=lambda pc: pc[0].usd_per_request)
    left, usd_per_s = rate_rps, 0.0
    for point, count in points:
        take = min(left, point.rate_rps * count)
        usd_per_s += take * point.usd_per_request
        left -= take
    if left > 1e-9:  # beyond SLO capacity: the rest at the dearest point (still a bound)
        usd_per_s += left * points[-1][0].usd_per_request
    return usd_per_s


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(
    result: SimResult,
    slo: SLO,
    lower_bound: float,
    windowed_bound: float | None = None,
    *,
    pool_cost_per_hour: Decimal | None = None,
    paid_s: float | None = None,
) -> dict[str, object]:
    """The per-policy numbers of one load level."""
    n = len(result.ttft_s)
    ttft_ok = [t <= slo.ttft_ms / 1000 for t in result.ttft_s]
    tpot_ok = [t <= slo.tpot_ms / 1000 for t in result.tpot_s]
    cost = result.cost_usd
    per_mtok = float(cost / Decimal(result.output_tokens) * Decimal(1_000_000))
    total_tokens = result.output_tokens + result.prompt_tokens
    served = sum(result.tokens_by_chip.values())
    return {
        "cost_per_mtok": round(per_mtok, 4),
        "lower_bound_cost_per_mtok": round(lower_bound, 4),
        "cost_vs_lower_bound": round(per_mtok / lower_bound, 3),
        "windowed_lower_bound_cost_per_mtok": None if windowed_bound is None else round(windowed_bound, 4),
        "cost_vs_windowed_lower_bound": None if windowed_bound is None else round(per_mtok / windowed_bound, 3),
        "cost_per_mtok_total_tokens": round(float(cost / Decimal(total_tokens) * Decimal(1_000_000)), 4),
        # every replica of the pool paid for the whole load period: what a fixed fleet costs
        "replica_hours_cost_per_mtok": None if pool_cost_per_hour is None or paid_s is None else round(
            float(pool_cost_per_hour * Decimal(repr(paid_s)) / 3600 / Decimal(result.output_tokens)) * 1e6, 4),
        "cost_usd": str(cost.quantize(Decimal("0.000001"))),
        "slo_attainment": round(sum(a and b for a, b in zip(ttft_ok, tpot_ok, strict=True)) / n, 4),
        "ttft_attainment": round(sum(ttft_ok) / n, 4),
        "tpot_attainment": round(sum(tpot_ok) / n, 4),
        "ttft_p50_ms": round(percentile(result.ttft_s, 0.50) * 1000, 1),
        "ttft_p99_ms": round(percentile(result.ttft_s, 0.99) * 1000, 1),
        "tpot_p50_ms": round(percentile(result.tpot_s, 0.50) * 1000, 1),
        "tpot_p99_ms": round(percentile(result.tpot_s, 0.99) * 1000, 1),
        "replicas_used": sum(1 for s in result.busy_s_by_replica.values() if s > 0),
        "busy_s_by_replica": {k: round(v, 1) for k, v in result.busy_s_by_replica.items()},
        "mean_batch_by_replica": {k: round(v, 1) for k, v in result.mean_batch_by_replica.items()},
        "token_share_by_chip": {
            chip: round(tokens / served, 3) for chip, tokens in sorted(result.tokens_by_chip.items())
        },
        "decisions": dict(result.reasons),
        "requests": n,
        "simulated_s": round(result.sim_seconds, 1),
    }


def run_benchmark(trace: list[TraceRequest], pool: list[PoolMember], slo: SLO) -> dict[str, object]:
    """Every policy at every load level; returns the report as plain data."""
    prompt = sum(r.prompt_tokens for r in trace) / len(trace)
    output = sum(r.output_tokens for r in trace) / len(trace)
    capacity = pool_capacity_rps(pool, prompt, output, slo)
    levels: dict[str, object] = {}
    for level, fraction in LOADS:
        rate = capacity * fraction
        replay = rescale(trace, rate)
        bound = lower_bound_cost_per_mtok(pool, rate, prompt, output, slo)
        windowed = windowed_lower_bound_cost_per_mtok(pool, replay, prompt, output, slo)
        policies: dict[str, dict[str, object]] = {}
        for name in POLICY_NAMES:
            started = time.perf_counter()
            result = run_simulation(replay, pool, make_policy(name, slo=slo), slo)
            policies[name] = summarize(
                result, slo, bound, windowed,
                pool_cost_per_hour=sum((m.profile.cost_per_hour * m.count for m in pool), Decimal(0)),
                paid_s=replay[-1].arrival_s,
            )
            policies[name]["wall_s"] = round(time.perf_counter() - started, 2)
        baseline = float(policies["round_robin"]["cost_per_mtok"])  # type: ignore[arg-type]
        for stats in policies.values():
            stats["cost_vs_round_robin"] = round(float(stats["cost_per_mtok"]) / baseline, 3)  # type: ignore[arg-type]
        levels[level] = {
            "load_fraction_of_capacity": fraction,
            "rate_rps": round(rate, 2),
            "lower_bound_cost_per_mtok": round(bound, 4),
            "windowed_lower_bound_cost_per_mtok": round(windowed, 4),
            "policies": policies,
        }
    return {
        "pool_capacity_rps": round(capacity, 2),
        "mean_prompt_tokens": round(prompt, 1),
        "mean_output_tokens": round(output, 1),
        "levels": levels,
    }


def check_targets(levels: dict[str, dict[str, object]]) -> list[dict[str, object]]:
    """The brief's targets, each with the measured value and whether it is met."""
    med = levels["medium"]["policies"]  # type: ignore[index]
    high = levels["high"]["policies"]  # type: ignore[index]
    cl = med["cost_latency"]
    out: list[dict[str, object]] = []

    def target(text: str, value: object, met: bool) -> None:
        out.append({"target": text, "value": value, "met": met})

    for rival in ("round_robin", "least_outstanding"):
        saving = 1 - cl["cost_per_mtok"] / med[rival]["cost_per_mtok"]
        target(f"medium: cost_latency >= 30% cheaper than {rival}", round(saving, 3), saving >= 0.30)
    target("medium: cost_latency SLO attainment >= 99%", cl["slo_attainment"], cl["slo_attainment"] >= 0.99)
    vs_bound = cl["cost_vs_lower_bound"]
    target("medium: cost_latency within 1.2x of the lower bound", vs_bound, vs_bound <= 1.2)
    vs_windowed = cl["cost_vs_windowed_lower_bound"]
    target("(context) medium: cost_latency within 1.2x of the windowed lower bound", vs_windowed, vs_windowed <= 1.2)
    hcl, hlo = high["cost_latency"]["slo_attainment"], high["least_outstanding"]["slo_attainment"]
    target("high: cost_latency SLO attainment >= least_outstanding's", f"{hcl} vs {hlo}", hcl >= hlo)
    return out


def markdown(report: dict[str, object]) -> str:
    """The report as a markdown snippet for loadtests/RESULTS.md."""
    slo = report["slo"]
    lines = [
        "### Routing policies on a mixed-chip pool (simulated replicas)",
        "",
        "Pool (one ~8B model, **simulated** replicas with the chip profiles of `backends/chips.py`): "
        + ", ".join(f"{n}x {c}" for c, n in POOL)
        + f". SLO: TTFT <= {slo['ttft_ms']:g} ms and mean TPOT <= {slo['tpot_ms']:g} ms per request. "
        f"Workload: {report['requests']} requests of the {report['trace_source']}, arrivals rescaled to each rate "
        f"(mean prompt {report['mean_prompt_tokens']} / output {report['mean_output_tokens']} tokens). "
        f"Pool SLO capacity (fluid model) {report['pool_capacity_rps']} req/s. "
        "Cost: $/hour of each replica only while it has work (idle replicas scaled in for free, which no "
        "real engine allows), per 1M output tokens; 'replica-hours' prices every replica of the pool for the "
        "load period, as the operator pays it: the same for every policy, which is why capacity must follow "
        "the load (loadtests/bench_fleet.py) for routing by cost to save money; "
        "lower bound: load poured into the cheapest capacity first at each chip's best SLO-meeting batch "
        "(fluid model; 'windowed' applies it to each 60 s of the replay at that window's own rate, which "
        "accounts for the trace's bursts and is still a bound no policy beats).",
        "",
        "| load | policy | $/1M out tok | $/1M (replica-hours) | vs lower bound | vs windowed bound | vs round_robin "
        "| SLO met "
        "| TTFT p50 ms | TTFT p99 ms | TPOT p99 ms | replicas used |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level, data in report["levels"].items():  # type: ignore[union-attr]
        for name, s in data["policies"].items():
            lines.append(
                f"| {level} ({data['rate_rps']} req/s) | {name} | {s['cost_per_mtok']:.3f} "
                f"| {s['replica_hours_cost_per_mtok']:.3f} | {s['cost_vs_lower_bound']:.2f}x | {s['cost_vs_windowed_lower_bound']:.2f}x "
                f"| {s['cost_vs_round_robin']:.2f}x | {s['slo_attainment'] * 100:.1f}% | {s['ttft_p50_ms']:.0f} "
                f"| {s['ttft_p99_ms']:.0f} | {s['tpot_p99_ms']:.0f} | {s['replicas_used']} |"
            )
        lines.append(
            f"| {level} | *lower bound (whole run / per 60 s window)* | {data['lower_bound_cost_per_mtok']:.3f} / "
            f"{data['windowed_lower_bound_cost_per_mtok']:.3f} | | | | | | | | | |"
        )
    lines += ["", "Targets (medium = 40% of SLO capacity, high = 75%):", ""]
    for t in report["targets"]:  # type: ignore[union-attr]
        lines.append(f"- {'met' if t['met'] else 'NOT met'}: {t['target']} (measured {t['value']})")
    lines += [
        "",
        "Notes: the trace has no prompt-prefix information, so `prefix_affinity` runs its fallback and equals "
        "`least_outstanding`. `cheapest` sends everything to the lowest $/hour replicas (the L4s), whose queues "
        "never drain: its TTFTs are queueing times. The gap of `cost_latency` to the lower bound is mostly "
        "batching it cannot have: the bound runs every chip at its most efficient batch, but a replica only "
        "reaches that batch when enough requests are in flight (at low load even one MI300X runs at a mean "
        "batch far below it).",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}` ({report['wall_s']} s wall). "
        "Deterministic: the same command gives the same numbers.",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, object], path: Path) -> None:
    """Cost per 1M tokens and SLO attainment per policy and load level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(report["levels"].items())  # type: ignore[union-attr]
    names = list(POLICY_NAMES)
    fig, (ax_cost, ax_slo) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(levels))]
        ax_cost.bar(xs, [d["policies"][name]["cost_per_mtok"] for _, d in levels], width, label=name)
        ax_slo.bar(xs, [d["policies"][name]["slo_attainment"] * 100 for _, d in levels], width, label=name)
    centers = [j + 0.4 - width / 2 for j in range(len(levels))]
    for j, (_, d) in enumerate(levels):
        ax_cost.hlines(d["lower_bound_cost_per_mtok"], j - width / 2, j + 0.8 - width / 2, colors="black",
                       linestyles="dashed", label="lower bound" if j == 0 else None)
    labels = [f"{lvl}\n{d['rate_rps']} req/s" for lvl, d in levels]
    for ax in (ax_cost, ax_slo):
        ax.set_xticks(centers, labels)
    for j, (_, d) in enumerate(levels):
        ax_cost.hlines(d["windowed_lower_bound_cost_per_mtok"], j - width / 2, j + 0.8 - width / 2, colors="grey",
                       linestyles="dotted", label="lower bound, per 60 s window" if j == 0 else None)
    ax_cost.set_ylabel("USD per 1M output tokens (busy time only)")
    ax_cost.set_yscale("log")
    ax_cost.set_title("Compute cost")
    ax_slo.set_ylabel("% requests meeting TTFT and TPOT SLO")
    ax_slo.set_ylim(0, 105)
    ax_slo.set_title("SLO attainment")
    ax_cost.legend(fontsize=8)
    fig.suptitle("Routing policies, simulated mixed-chip pool, Azure conv 2023 trace", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> str:
    return describe_machine()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"first {QUICK_REQUESTS} requests, no plot")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--requests", type=int, default=None, help="replay only the first N requests")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="full run: where the plot and table go")
    parser.add_argument("--ttft-ms", type=float, default=SLO().ttft_ms)
    parser.add_argument("--tpot-ms", type=float, default=SLO().tpot_ms)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    slo = SLO(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms)
    limit = args.requests or (QUICK_REQUESTS if args.quick else None)
    trace = load_trace(args.trace, limit=limit)
    pool = [PoolMember(chip, count, chip_profile(chip)) for chip, count in POOL]
    report: dict[str, object] = {
        "benchmark": "routing",
        "quick": args.quick,
        "trace": str(args.trace),
        "trace_source": TRACE_SOURCE,
        "requests": len(trace),
        "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms},
        "pool": [
            {"chip": c, "replicas": n, "cost_per_hour": str(chip_profile(c).cost_per_hour), "simulated": True}
            for c, n in POOL
        ],
    }
    report.update(run_benchmark(trace, pool, slo))
    report["targets"] = check_targets(report["levels"])  # type: ignore[arg-type]
    report["machine"] = machine()
    given = argv if argv is not None else sys.argv[1:]
    report["command"] = " ".join(["python -m loadtests.bench_routing", *(shlex.quote(a) for a in given)])
    report["wall_s"] = round(time.perf_counter() - started, 1)

    table = markdown(report)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if not args.quick:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        plot(report, args.out_dir / "routing_policies.png")
        snippet = table + "\n![routing policies](routing/routing_policies.png)\n"
        (args.out_dir / "RESULTS_routing.md").write_text(snippet)
        (args.out_dir / "routing_full.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"wrote {args.out_dir}/routing_policies.png, RESULTS_routing.md, routing_full.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
