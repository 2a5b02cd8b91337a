"""Batching benchmark: output tokens/s and time to first token at several
concurrencies, through the gateway (``maas serve`` with one in-process vLLM
replica) and against vLLM's own OpenAI server, same model and engine settings.

The two servers run one after the other in the same invocation (never together:
they would share the CPU). Requests stream, use a fixed prompt set, a fixed
``max_tokens`` and ``ignore_eos``, so every request generates the same length.

    python -m loadtests.bench_batching [--concurrency 1,8,32] [--max-tokens 64] [--out FILE.md]

Targets (ratios, measured in the same run): gateway c32 >= 0.95x vllm serve c32,
gateway c32 >= 5x gateway c1. On a shared machine tok/s moves with other load:
use ``--rounds 2`` (A-B-B-A) and read the CPU-seconds per 1000 tokens column too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from loadtests.machine import describe_machine

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator works to a ten-year-old.",
    "List some tips for growing tomatoes on a balcony, with reasons.",
    "Describe the water cycle in a few paragraphs.",
    "What are the main differences between cats and dogs as pets?",
    "Write a letter to a friend about a trip to the mountains.",
    "Explain why the sky is blue.",
    "Give a recipe for a simple vegetable soup, step by step.",
]
READY_TIMEOUT_S = 420


@dataclass
class Level:
    """The results of one server at one concurrency."""

    concurrency: int
    requests: int = 0
    output_tokens: int = 0
    wall_s: float = 0.0
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_s: float = 0.0  # CPU time of the server's whole process tree during the level
    load_avg: float = 0.0  # the machine's 1-minute load average when the level began

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s else 0.0

    def ttft_ms(self, q: float) -> float:
        if not self.ttfts:
            return float("nan")
        ordered = sorted(self.ttfts)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Target:
    """A server under test: its name, command line and readiness URL."""

    name: str
    command: list[str]
    ready_path: str
    port: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    return describe_machine()


async def one_request(session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int, level: Level) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    began = time.perf_counter()
    first: float | None = None
    tokens = chunks = 0
    try:
        async with session.post(url, data=orjson.dumps(body), headers={"content-type": "application/json"}) as resp:
            if resp.status != 200:
                level.errors += 1
                return
            buffer = b""
            async for data in resp.content.iter_any():
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    event = orjson.loads(line[6:])
                    for choice in event.get("choices") or []:
                        if (choice.get("delta") or {}).get("content"):
                            chunks += 1
                            if first is None:
                                first = time.perf_counter()
                    if event.get("usage"):
                        tokens = event["usage"]["completion_tokens"]
    except aiohttp.ClientError:
        level.errors += 1
        return
    level.requests += 1
    level.output_tokens += tokens or chunks
    if first is not None:
        level.ttfts.append(first - began)


async def run_level(base_url: str, concurrency: int, total: int, max_tokens: int) -> Level:
    level = Level(concurrency)
    url = base_url + "/v1/chat/completions"
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for i in counter:
                await one_request(session, url, PROMPTS[i % len(PROMPTS)], max_tokens, level)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        level.wall_s = time.perf_counter() - began
    return level


async def wait_ready(base_url: str, path: str, proc: subprocess.Popen) -> float:
    began = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.perf_counter() - began < READY_TIMEOUT_S:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
            try:
                async with session.get(base_url + path) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - began
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(1.0)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S}s")


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything it started (its process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (engine core, workers)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return total
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def bench_target(
    target: Target, levels: list[int], max_tokens: int, factor: int, log_dir: Path, round_no: int
) -> dict[int, Level]:
    log_path = log_dir / f"{target.name.replace(' ', '_')}-{round_no}.log"
    print(f"\n== {target.name}: starting  ({shlex.join(target.command)})\n   log: {log_path}", flush=True)
    proc = launch(target.command, log_path)
    try:
        base = f"http://127.0.0.1:{target.port}"
        ready_s = await wait_ready(base, target.ready_path, proc)
        print(f"   ready in {ready_s:.0f}s; warming up", flush=True)
        await run_level(base, 2, 2, max_tokens)
        results = {}
        for c in levels:
            load, cpu_before = os.getloadavg()[0], tree_cpu_seconds(proc.pid)
            level = await run_level(base, c, max(factor * c, 4), max_tokens)
            level.cpu_s, level.load_avg = tree_cpu_seconds(proc.pid) - cpu_before, load
            results[c] = level
            print(
                f"   c={c:<3} {level.requests} req  {level.tokens_per_s:7.1f} tok/s  "
                f"TTFT p50 {level.ttft_ms(0.5):7.0f} ms  CPU {level.cpu_s:6.1f}s  load {load:.1f}  "
                f"errors {level.errors}",
                flush=True,
            )
        return results
    finally:
        stop(proc)


def launch(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start a server in its own process group, output to ``log_path`` (before any load runs)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def gateway_config(path: Path, port: int, model_dir: Path, engine: dict, data_dir: Path) -> None:
    import yaml

    config = {
        "server": {"host": "127.0.0.1", "port": port, "allow_anonymous": True, "log_level": "warning"},
        "models": [{"name": MODEL, "max_model_len": engine["max_model_len"]}],
        "replicas": [
            {
                "id": "bench-cpu-0",
                "model": MODEL,
                "backend": "vllm",
                "chip": "cpu-avx2",
                "engine": {"model_path": str(model_dir), "dtype": "float32", "enforce_eager": True, **engine},
            }
        ],
        "ledger": f"sqlite:///{data_dir / 'maas.db'}",
        "limits": "memory",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _mean_rate(runs: list[Level]) -> float | None:
    return statistics.fmean(r.tokens_per_s for r in runs) if runs else None


def _pooled(runs: list[Level]) -> Level | None:
    """All rounds of one server at one concurrency as one Level (for TTFT, CPU, errors)."""
    if not runs:
        return None
    pooled = Level(runs[0].concurrency)
    for r in runs:
        pooled.requests += r.requests
        pooled.output_tokens += r.output_tokens
        pooled.wall_s += r.wall_s
        pooled.ttfts += r.ttfts
        pooled.errors += r.errors
        pooled.cpu_s += r.cpu_s
    return pooled


def _cpu_per_1k(level: Level | None) -> float | None:
    return 1000 * level.cpu_s / level.output_tokens if level and level.output_tokens else None


def report(
    results: dict[str, dict[int, list[Level]]], levels: list[int], args: argparse.Namespace, command: str
) -> str:
    gw, vl = results.get("gateway", {}), results.get("vllm serve", {})
    lines = [
        "# Batching benchmark: gateway vs vLLM's own server",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        (
            f"- model: {MODEL} (bundled, float32, enforce_eager), max_model_len {args.max_model_len}, "
            f"max_num_seqs {args.max_num_seqs}, KV cache {args.kv_cache_gib} GiB, prefix caching on (both)"
        ),
        (
            "- vllm serve: `python -m vllm.entrypoints.openai.api_server` with the same settings"
            + (f" plus `{args.vllm_args}`" if args.vllm_args else " (its defaults otherwise: stats and /metrics on)")
        ),
        (
            "- gateway: `python -m gateway.cli serve --config <generated>`: one `backend: vllm` replica, anonymous "
            "access, SQLite ledger, in-memory limits (the full request path: routing, metering, ledger)"
        ),
        (
            f"- workload: streaming chat, {len(PROMPTS)} fixed prompts, max_tokens {args.max_tokens}, ignore_eos, "
            f"{args.requests_factor}x concurrency requests per level (min 4), one warm-up pair first; "
            f"{args.rounds} round(s), servers alternating A-B, B-A, ... (never both up at once)"
        ),
        (
            "- tok/s: mean over rounds; TTFT and CPU pooled over rounds. CPU-s/1k tok is the CPU time of the "
            "server's whole process tree (API process, engine core, worker) per 1000 output tokens: it does not "
            "depend on other load on the machine the way tok/s does."
        ),
        "",
        (
            "| concurrency | vllm serve tok/s | gateway tok/s | gateway/vllm | vllm TTFT p50 ms | gateway TTFT p50 ms "
            "| vllm TTFT p95 ms | gateway TTFT p95 ms | vllm CPU-s/1k tok | gateway CPU-s/1k tok | errors (vllm/gw) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        v_rate, g_rate = _mean_rate(vl.get(c, [])), _mean_rate(gw.get(c, []))
        v, g = _pooled(vl.get(c, [])), _pooled(gw.get(c, []))
        ratio = f"{g_rate / v_rate:.2f}x" if v_rate and g_rate else "n/a"
        lines.append(
            f"| {c} | {_f(v_rate)} | {_f(g_rate)} | {ratio} | "
            f"{_f(v and v.ttft_ms(0.5), 0)} | {_f(g and g.ttft_ms(0.5), 0)} | "
            f"{_f(v and v.ttft_ms(0.95), 0)} | {_f(g and g.ttft_ms(0.95), 0)} | "
            f"{_f(_cpu_per_1k(v), 2)} | {_f(_cpu_per_1k(g), 2)} | "
            f"{v.errors if v else '-'}/{g.errors if g else '-'} |"
        )
    lo, hi = min(levels), max(levels)
    lines.append("")
    g_lo, g_hi, v_hi = _mean_rate(gw.get(lo, [])), _mean_rate(gw.get(hi, [])), _mean_rate(vl.get(hi, []))
    if g_lo and g_hi:
        scale = g_hi / g_lo
        lines.append(f"- gateway c{hi}/c{lo}: **{scale:.2f}x** (target >= 5x: {'met' if scale >= 5 else 'NOT met'})")
    if g_hi and v_hi:
        parity = g_hi / v_hi
        lines.append(
            f"- gateway/vllm at c{hi}: **{parity:.2f}x** (target >= 0.95x: {'met' if parity >= 0.95 else 'NOT met'})"
        )
        per_round = [
            f"{g.tokens_per_s / v.tokens_per_s:.2f}x" for g, v in zip(gw.get(hi, []), vl.get(hi, [])) if v.tokens_per_s
        ]
        lines.append(f"- gateway/vllm at c{hi}, round by round: {', '.join(per_round)}")
    loads = [
        f"{name} c{c}: {r.load_avg:.1f}" for name, by_c in results.items() for c in levels for r in by_c.get(c, [])
    ]
    lines.append(
        f"- 1-min load average at the start of each level (2 cores; other work shares them): {'; '.join(loads)}"
    )
    return "\n".join(lines) + "\n"


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def main_async(args: argparse.Namespace) -> int:
    from backends.bundled_model import prepare_bundled_model

    model_dir = Path(args.model_dir) if args.model_dir else prepare_bundled_model()
    levels = [int(c) for c in args.concurrency.split(",")]
    engine = {"max_model_len": args.max_model_len, "max_num_seqs": args.max_num_seqs, "kv_cache_gib": args.kv_cache_gib}
    work = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    gw_port, vl_port = free_port(), free_port()
    gateway_config(work / "gateway.yaml", gw_port, model_dir, engine, work)
    targets = {
        "vllm serve": Target(
            "vllm serve",
            [
                sys.executable,
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(model_dir),
                "--served-model-name",
                MODEL,
                "--dtype",
                "float32",
                "--enforce-eager",
                "--max-model-len",
                str(args.max_model_len),
                "--max-num-seqs",
                str(args.max_num_seqs),
                "--kv-cache-memory-bytes",
                str(int(args.kv_cache_gib * (1 << 30))),
                "--port",
                str(vl_port),
                *shlex.split(args.vllm_args),
            ],
            "/v1/models",
            vl_port,
        ),
        "gateway": Target(
            "gateway",
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(work / "gateway.yaml"),
                "--port",
                str(gw_port),
            ],
            "/readyz",
            gw_port,
        ),
    }
    order = [t.strip() for t in args.order.split(",")]
    results: dict[str, dict[int, list[Level]]] = {name: {} for name in order}
    for round_no in range(args.rounds):
        # A-B, then B-A: drifting background load falls on both servers alike
        for name in order if round_no % 2 == 0 else reversed(order):
            by_level = await bench_target(targets[name], levels, args.max_tokens, args.requests_factor, work, round_no)
            for c, level in by_level.items():
                results[name].setdefault(c, []).append(level)
    command = "python -m loadtests.bench_batching " + shlex.join(sys.argv[1:])
    text = report(results, levels, args, command)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-factor", type=int, default=2, help="requests per level = factor x concurrency")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--kv-cache-gib", type=float, default=2.0)
    parser.add_argument("--model-dir", help="model directory (default: the bundled model)")
    parser.add_argument(
        "--vllm-args",
        default="",
        help="extra arguments for vLLM's server, e.g. '--disable-log-stats' (default: as deployed)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times each")
    parser.add_argument("--order", default="vllm serve,gateway", help="which server runs first")
    parser.add_argument("--out", help="also write the table as markdown to this file")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
