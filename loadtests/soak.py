"""Soak: steady load on one gateway for a long time while its memory (RSS) is sampled.

Starts the mock upstream (``loadtests.mock_upstream``) and ``maas serve`` with one
``backend: openai`` replica in front of it (SQLite ledger, memory limits), then
two paced load generators (non-streaming and streaming chat) for ``--minutes``.
The gateway's RSS is read from /proc every ``--interval`` seconds. Target (issue 6):
RSS after 20 minutes within 10% of RSS after 2 minutes.

    python -m loadtests.soak --minutes 20 --rate 200            # ~21 minutes
    python -m loadtests.soak --minutes 1 --reference-min 0.25   # smoke run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadtests.bench_overhead import ROOT, git_commit, machine, start_maas, start_mock

TARGET_GROWTH = 0.10


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def sample(pid: int, interval: float, stop: threading.Event, rows: list[tuple[float, int, float]]) -> None:
    """Append (seconds since start, RSS bytes, CPU seconds) every ``interval`` until ``stop``."""
    started = time.monotonic()
    while not stop.is_set():
        rows.append((time.monotonic() - started, rss_bytes(pid), cpu_seconds(pid)))
        stop.wait(interval)
    rows.append((time.monotonic() - started, rss_bytes(pid), cpu_seconds(pid)))


def rss_at(rows: list[tuple[float, int, float]], seconds: float) -> int:
    """The sample closest to ``seconds`` after start."""
    return min(rows, key=lambda r: abs(r[0] - seconds))[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long to keep the load on")
    parser.add_argument("--rate", type=float, default=200.0, help="total requests/s (paced, both kinds)")
    parser.add_argument("--stream-share", type=float, default=0.3, help="fraction of the rate that streams")
    parser.add_argument("--connections", type=int, default=8, help="per load generator")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--reference-min", type=float, default=2.0, help="the early sample to compare the end with")
    parser.add_argument("--gateway-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "RESULTS_soak.md")
    parser.add_argument("--samples", type=Path, help="CSV of every sample (default: next to --out)")
    args = parser.parse_args(argv)

    duration = args.minutes * 60
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host, commit = machine(), git_commit()
    command = "python -m loadtests.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    rows: list[tuple[float, int, float]] = []
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="maas-soak-") as tmp:
        workdir = Path(tmp)
        mock = start_mock(workdir, args.client_cpu)
        gateway = None
        try:
            gateway = start_maas(workdir, mock, args.gateway_cpu)
            stop = threading.Event()
            sampler = threading.Thread(target=sample, args=(gateway.proc.pid, args.interval, stop, rows), daemon=True)
            sampler.start()
            loads = {}
            for kind, share in (("chat", 1 - args.stream_share), ("stream", args.stream_share)):
                if share <= 0:
                    continue
                argv_ = [sys.executable, "-m", "loadtests.loadgen", "--url", gateway.url + "/v1/chat/completions",
                         "--connections", str(args.connections), "--duration", str(duration), "--warmup", "0",
                         "--rate", str(args.rate * share), "--cpu", str(args.client_cpu)]
                if kind == "stream":
                    argv_.append("--stream")
                loads[kind] = subprocess.Popen(argv_, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for kind, proc in loads.items():
                out, err = proc.communicate(timeout=duration + 120)
                if proc.returncode != 0:
                    raise RuntimeError(f"load generator {kind} failed: {err[-2000:]}")
                results[kind] = json.loads(out)
            stop.set()
            sampler.join(30)
        finally:
            if gateway is not None:
                gateway.stop()
                log = args.out.parent / "out" / "soak-gateway.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_bytes(gateway.log.read_bytes())
            mock.stop()

    reference_s = args.reference_min * 60
    early, end = rss_at(rows, reference_s), rows[-1][1]
    growth = (end - early) / early
    peak = max(r[1] for r in rows)
    served = sum(r["requests"] for r in results.values())
    errors = sum(r["errors"] for r in results.values())
    cpu = rows[-1][2] - rows[0][2]
    mib = 1024 * 1024
    achieved = sum(r["rps"] for r in results.values())
    held = achieved >= 0.9 * args.rate  # a soak whose load stalled says nothing about memory under load
    ok = abs(growth) <= TARGET_GROWTH and held
    lines = [
        "## Soak: gateway memory under steady load",
        "",
        f"- date: {started}",
        f"- machine: {host}",
        f"- command: `{command}`",
        f"- maas-gateway: {commit}; one worker pinned to core {args.gateway_cpu}, in front of the mock upstream "
        f"(core {args.client_cpu}); SQLite ledger, memory limits",
        f"- load: {args.rate:g} req/s paced ({args.stream_share:.0%} streamed), {args.minutes:g} min",
        "",
        "| RSS at start | RSS at "
        f"{args.reference_min:g} min | RSS at end ({rows[-1][0] / 60:.1f} min) | peak | change vs {args.reference_min:g} min "
        "| requests | errors | gateway CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {rows[0][1] / mib:.1f} MiB | {early / mib:.1f} MiB | {end / mib:.1f} MiB | {peak / mib:.1f} MiB | "
        f"{growth:+.1%} | {served:,} | {errors} | {cpu:.0f} |",
        "",
        f"- load held: {achieved:.0f} of {args.rate:g} req/s on average ({'yes' if held else 'NO: the run is void'})",
        f"- target: RSS at the end within {TARGET_GROWTH:.0%} of RSS at {args.reference_min:g} min: "
        f"{'met' if ok else 'MISSED'} ({growth:+.1%})",
    ]
    for kind, r in results.items():
        lines.append(f"- {kind}: {r['requests']:,} requests at {r['rps']:.0f} req/s, p50 {r['latency_ms'].get('p50', 0):.2f} ms, "
                     f"p99 {r['latency_ms'].get('p99', 0):.2f} ms, errors {r['errors']} (timeouts {r.get('timeouts', 0)}, "
                     f"dropped connections {r.get('disconnects', 0)})")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    samples = args.samples or args.out.with_suffix(".csv")
    with samples.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "rss_bytes", "cpu_seconds"])
        writer.writerows((f"{t:.1f}", rss, f"{c:.2f}") for t, rss, c in rows)
    print(f"written to {args.out} and {samples}")
    return 0 if ok and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
