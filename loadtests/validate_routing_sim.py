"""Validate the routing simulation against the real gateway, once, at a small load.

The same slice of the Azure conversation trace goes (1) through the discrete-event
simulation of ``loadtests.routing_sim`` and (2) in real time through a real gateway
process (``python -m gateway.cli serve``) whose replicas are ``backend: simulated``
with the same chip profiles, routed by the same policy with the same SLO. An
open-loop aiohttp client sends each request at its arrival time, streaming, and
records the replica (``x-maas-replica``), TTFT, TPOT and output tokens.

Lengths are made equal on both sides: each prompt is text of exactly the trace's
token count (one word-piece per common English word, so the gateway's tiktoken
estimate, the replica's count and the DES agree), and the simulated replica's
natural answer length is fixed by the prompt and ``seed``, so the client picks a
seed whose natural length is at least the trace's output and sends that as
``max_tokens``: the replica then writes exactly that many tokens. The DES is fed the
lengths the gateway actually reported (usage), so a mismatch could not skew it.

    python -m loadtests.validate_routing_sim                  # ~3 minutes, writes routing/validation.md
    python -m loadtests.validate_routing_sim --requests 150 --rate 2 --time-scale 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import orjson
import yaml

from backends.chips import chip_profile
from backends.sim_text import count_tokens, natural_length, seeded_rng
from billing.tokens import TokenCounter
from gateway.config import SLO
from loadtests.bench_routing import TRACE, machine, percentile
from loadtests.routing_sim import MODEL, PoolMember, TraceRequest, load_trace, rescale, run_simulation
from routing.policies import make_policy

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "routing" / "validation.md"
#: one replica per chip; ids follow the DES's ``{chip}-{i}`` so both sides name them alike
POOL: tuple[str, ...] = ("nvidia-h100", "nvidia-l4", "ascend-910b", "kunlun-p800")
POLICIES: tuple[str, ...] = ("cost_latency", "round_robin")
#: the simulated replica never answers longer than this (backends.sim_text.natural_length)
MAX_OUTPUT = 200
#: ``seed`` of every replica in the generated config: the natural length depends on it
REPLICA_SEED = 0
#: each is one token for the simulated replica's word-piece tokenizer and for cl100k
_WORDS = (
    "the", "a", "model", "token", "chip", "batch", "cache", "of", "to", "and", "in", "is", "we",
    "it", "on", "for", "time", "cost", "with", "more", "less", "than", "each", "every", "good",
    "simple", "value", "fast", "layer", "step", "queue",
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as sent: when (s from the start, already time-scaled) and what."""

    at_s: float
    prompt_tokens: int
    output_tokens: int
    prompt: str
    seed: int


@dataclass(slots=True)
class Observation:
    """What one request did: where it ran and how fast (seconds, from the run's start)."""

    replica: str
    sent_s: float
    end_s: float
    ttft_s: float
    tpot_s: float
    output_tokens: int
    late_s: float = 0.0  # how late the client sent it
    overhead_ms: float | None = None  # x-maas-overhead-ms: the gateway's own time to first byte
    error: str | None = None


def prompt_text(tokens: int, rng: random.Random) -> str:
    """Text that both the simulated replica and the gateway's estimate count as ``tokens``."""
    return " ".join(rng.choice(_WORDS) for _ in range(tokens))


def seed_for(prompt: str, output_tokens: int) -> int:
    """A request ``seed`` for which the replica's natural answer is >= ``output_tokens``."""
    for seed in range(100_000):
        if natural_length(seeded_rng(REPLICA_SEED, seed, prompt, 0)) >= output_tokens:
            return seed
    raise ValueError(f"no seed gives {output_tokens} output tokens")


def build_workload(
    trace: Sequence[TraceRequest], rate: float, time_scale: float, max_prompt: int, max_output: int
) -> list[Arrival]:
    """The trace slice rescaled to ``rate`` req/s, lengths capped, times scaled."""
    counter = TokenCounter()
    out: list[Arrival] = []
    for i, r in enumerate(rescale(trace, rate)):
        prompt = prompt_text(min(r.prompt_tokens, max_prompt), random.Random(i))
        tokens = count_tokens(prompt)
        if counter.count_text(prompt) != tokens:
            raise AssertionError("prompt words must be one token for both counters")
        output = min(r.output_tokens, max_output)
        out.append(Arrival(r.arrival_s * time_scale, tokens, output, prompt, seed_for(prompt, output)))
    return out


# -- the simulation side ---------------------------------------------------------------------


def simulate(
    workload: Sequence[Arrival], outputs: Sequence[int], policy: str, slo: SLO, time_scale: float
) -> list[Observation]:
    """The DES on the same arrivals, with the output lengths the real run reported."""
    trace = [
        TraceRequest(a.at_s, a.prompt_tokens, out, max_tokens=a.output_tokens)
        for a, out in zip(workload, outputs, strict=True)
    ]
    pool = [PoolMember(chip, 1, chip_profile(chip)) for chip in POOL]
    result = run_simulation(trace, pool, make_policy(policy, slo=slo), slo, time_scale=time_scale)
    return [
        Observation(replica, t.arrival_s, t.arrival_s + ttft + tpot * max(0, t.output_tokens - 1), ttft, tpot,
                    t.output_tokens)
        for t, replica, ttft, tpot in zip(trace, result.replica_by_request, result.ttft_s, result.tpot_s, strict=True)
    ]


# -- the real side ----------------------------------------------------------------------------


def gateway_config(policy: str, slo: SLO, time_scale: float, port: int, workdir: Path) -> dict[str, object]:
    """A gateway with one simulated replica per chip of POOL, anonymous access, SQLite ledger."""
    return {
        "server": {"host": "127.0.0.1", "port": port, "allow_anonymous": True, "log_level": "warning"},
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.10", "output_per_mtok": "0.30"}}],
        "replicas": [
            {"id": f"{chip}-0", "model": MODEL, "backend": "simulated", "chip": chip,
             "time_scale": time_scale, "seed": REPLICA_SEED}
            for chip in POOL
        ],
        "routing": {"policy": policy, "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms}},
        "ledger": f"sqlite:///{workdir / 'ledger.db'}",
        "limits": "memory",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"gateway not ready after 60 s:\n{log.read_text()[-3000:]}")


async def _send(session: aiohttp.ClientSession, url: str, a: Arrival, t0: float) -> Observation:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t0 + a.at_s - loop.time()))
    sent = loop.time()
    body = {
        "model": MODEL, "prompt": a.prompt, "max_tokens": a.output_tokens, "seed": a.seed, "stream": True,
        "stream_options": {"include_usage": True},
    }
    obs = Observation("", sent - t0, sent - t0, 0.0, 0.0, 0, late_s=sent - t0 - a.at_s)
    first = last = None
    try:
        async with session.post(url + "/v1/completions", data=orjson.dumps(body),
                                headers={"content-type": "application/json"}) as resp:
            obs.replica = resp.headers.get("x-maas-replica", "")
            if "x-maas-overhead-ms" in resp.headers:
                obs.overhead_ms = float(resp.headers["x-maas-overhead-ms"])
            if resp.status != 200:
                obs.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                return obs
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    break
                chunk = orjson.loads(payload)
                if "error" in chunk:  # the stream broke after its first byte
                    obs.error = f"stream error: {chunk['error'].get('message', '')[:200]}"
                    return obs
                now = loop.time()
                if chunk.get("choices"):
                    first = now if first is None else first
                    last = now
                if chunk.get("usage"):
                    obs.output_tokens = int(chunk["usage"]["completion_tokens"])
    except aiohttp.ClientError as exc:
        obs.error = repr(exc)
        return obs
    if first is None or last is None:
        obs.error = "no tokens"
        return obs
    obs.ttft_s = first - sent
    obs.tpot_s = (last - first) / (obs.output_tokens - 1) if obs.output_tokens > 1 else 0.0
    obs.end_s = last - t0
    return obs


async def _drive(
    url: str, admin: str, workload: Sequence[Arrival], proc: subprocess.Popen[bytes], log: Path
) -> tuple[list[Observation], dict[str, float]]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _wait_ready(session, url, proc, log)
        # warm the HTTP path without touching a replica (a completion would teach the router)
        for _ in range(3):
            async with session.get(url + "/v1/models") as resp:
                await resp.read()
        t0 = asyncio.get_running_loop().time() + 0.5
        observations = await asyncio.gather(*(_send(session, url, a, t0) for a in workload))
        async with session.get(url + "/admin/replicas", headers={"authorization": f"Bearer {admin}"}) as resp:
            replicas = (await resp.json())["data"]
    return list(observations), {r["id"]: float(r["telemetry"]["busy_seconds"]) for r in replicas}


def run_gateway(
    workload: Sequence[Arrival], policy: str, slo: SLO, time_scale: float
) -> tuple[list[Observation], dict[str, float]]:
    """The arrivals in real time through a gateway process; also its own busy seconds per replica."""
    with tempfile.TemporaryDirectory(prefix="simval-") as tmp:
        workdir = Path(tmp)
        port = _free_port()
        config = workdir / "gateway.yaml"
        config.write_text(yaml.safe_dump(gateway_config(policy, slo, time_scale, port, workdir)))
        log = workdir / "gateway.log"
        admin = secrets.token_hex(16)
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
                cwd=ROOT, env={**os.environ, "MAAS_ADMIN_KEY": admin}, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            return asyncio.run(_drive(f"http://127.0.0.1:{port}", admin, workload, proc, log))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


# -- comparison -------------------------------------------------------------------------------

#: why the two sides differ; the numbers they refer to are in each policy's bullets
SOURCES = """### Where the differences come from

- **Routing between near-equal chips turns on milliseconds.** In this pool `cost_latency` puts the H100 and the
  Kunlun P800 in one 3% capacity-cost bucket and then prefers the replica that already has work (one more sequence
  in a running batch is nearly free). Whether an H100 stream ended a few ms before or after the next arrival flips
  that choice, and later choices cascade from it ("first request routed differently": the in-flight counts at that
  instant differ by one). Per-chip shares are not a stable statistic here; cost and latency barely move with them.
- **Step timing.** The simulated replica sleeps each engine step on the gateway's event loop (uvloop, ms timers) and
  repays oversleep up to 50 ms, so per-request TPOT matches at the median (~1%). A stall of the whole process beyond
  that (2 shared cores; see the client's worst send lateness) is not repaid and stretches every running stream: the
  TPOT tail (in a development run of this command a 166 ms stall moved `round_robin`'s TPOT p50 by +7% and its SLO
  attainment by -1.5 points). Streams ending a little later on the real side also move the routing instants above.
- **The HTTP path.** Client TTFT includes what the DES has no notion of: sending the prompt (2,048 tokens is ~10 KB
  of JSON), the gateway's parse, token estimate, admission and routing (`x-maas-overhead-ms`), SSE framing and the
  client's parsing: the few-ms TTFT offset, which only matters next to H100-class TTFTs of tens of ms.
- **Statistics at a boundary.** TPOT p50 over a mixed pool falls between the chips' TPOT clusters (H100 ~8 ms, Kunlun
  ~17, Ascend ~22, L4 ~80+): a few requests moving can shift it more than any chip's own TPOT moved (per-chip rows).
  SLO attainment counts requests near the 100 ms TPOT limit (the L4 under `round_robin`); ~1% flips a few.
- **Not in the DES, checked not to matter here:** the gateway's health probes copy each engine's running/waiting
  counts into telemetry every 5 s; with probes once an hour the run routed exactly the same. Client-side busy time
  includes the HTTP path at both ends of each busy period; the gateway's own telemetry gives the same busy seconds.
"""


def busy_seconds(observations: Sequence[Observation]) -> dict[str, float]:
    """Per replica, the time it had at least one request (union of [sent, last token])."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for o in observations:
        if not o.error:
            spans.setdefault(o.replica, []).append((o.sent_s, o.end_s))
    busy: dict[str, float] = {}
    for replica, intervals in spans.items():
        total, start, end = 0.0, -1.0, -1.0
        for s, e in sorted(intervals):
            if s > end:
                total += end - start
                start, end = s, e
            else:
                end = max(end, e)
        busy[replica] = total + end - start
    return busy


def cost_per_mtok(busy: dict[str, float], output_tokens: int) -> Decimal:
    """USD per 1M output tokens: busy seconds x the replica's $/hour (idle replicas scale in)."""
    usd = sum((Decimal(repr(s)) * chip_profile(r.rsplit("-", 1)[0]).cost_per_hour for r, s in busy.items()),
              Decimal(0)) / 3600
    return usd / max(1, output_tokens) * 1_000_000


def _p(values: Sequence[float], q: float) -> float:
    return percentile(values, q) if values else math.nan


def metrics(observations: Sequence[Observation], slo: SLO) -> dict[str, float]:
    """The compared numbers of one side (ms, shares in %; NaN where a chip served nothing)."""
    ok = [o for o in observations if not o.error]
    n = len(observations)
    chips = Counter(o.replica.rsplit("-", 1)[0] for o in ok)
    out = {f"requests on {chip} (%)": 100 * chips[chip] / n for chip in POOL}
    out["TTFT p50 (ms)"] = 1000 * _p([o.ttft_s for o in ok], 0.5)
    out["TTFT p90 (ms)"] = 1000 * _p([o.ttft_s for o in ok], 0.9)
    decoded = [o for o in ok if o.output_tokens > 1]
    out["TPOT p50 (ms)"] = 1000 * _p([o.tpot_s for o in decoded], 0.5)
    for chip in POOL:
        out[f"TPOT p50 on {chip} (ms)"] = 1000 * _p([o.tpot_s for o in decoded if o.replica.startswith(chip)], 0.5)
    met = sum(o.ttft_s <= slo.ttft_ms / 1000 and o.tpot_s <= slo.tpot_ms / 1000 for o in ok)
    out["SLO attainment (%)"] = 100 * met / n
    out["$ per 1M output tokens"] = float(cost_per_mtok(busy_seconds(ok), sum(o.output_tokens for o in ok)))
    return out


def comparison_table(des: dict[str, float], real: dict[str, float]) -> list[str]:
    """Markdown rows: metric, DES, real, real - DES, and that as % of DES."""
    rows = ["| metric | DES | real gateway | real - DES | % of DES |", "|---|---|---|---|---|"]
    for key, d in des.items():
        r = real[key]
        if math.isnan(d) or math.isnan(r):
            continue  # a chip one side never used
        fmt = "{:.4f}" if key.startswith("$") else "{:.1f}"
        diff = ("+" if r >= d else "") + fmt.format(r - d)
        rows.append(f"| {key} | {fmt.format(d)} | {fmt.format(r)} | {diff} | "
                    f"{f'{(r - d) / d * 100:+.1f}%' if d else 'n/a'} |")
    return rows


def first_divergence(des: Sequence[Observation], real: Sequence[Observation]) -> str:
    """The first request the two sides routed differently, with each side's load there."""
    def load(side: Sequence[Observation], i: int, rid: str) -> int:
        t = side[i].sent_s
        return sum(1 for o in side[:i] if o.replica == rid and o.sent_s <= t < o.end_s)

    for i, (a, b) in enumerate(zip(des, real, strict=True)):
        if a.replica != b.replica and not b.error:
            pair = sorted({a.replica, b.replica})
            loads = ", ".join(f"{rid} {load(des, i, rid)} / {load(real, i, rid)}" for rid in pair)
            return (f"first request routed differently: #{i} at {b.sent_s:.2f} s, DES -> {a.replica}, real -> "
                    f"{b.replica}; requests in flight at that instant (DES / real): {loads}")
    return "every request went to the same replica on both sides"


def report_section(policy: str, des: list[Observation], real: list[Observation], gateway_busy: dict[str, float],
                   slo: SLO, planned: int) -> tuple[list[str], dict[str, object]]:
    """The markdown of one policy, and its numbers for the JSON."""
    d, r = metrics(des, slo), metrics(real, slo)
    errors = [o for o in real if o.error]
    same = sum(a.replica == b.replica for a, b in zip(des, real, strict=True)) / len(real)
    late = sorted(o.late_s * 1000 for o in real)
    overhead = [o.overhead_ms for o in real if o.overhead_ms is not None]
    des_busy, client_busy = busy_seconds(des), busy_seconds(real)
    # per request, where both sides used the same replica: the timing model without routing noise
    pairs = [(a, b) for a, b in zip(des, real, strict=True) if a.replica == b.replica and not b.error]
    ttft_gap = [(b.ttft_s - a.ttft_s) * 1000 for a, b in pairs]
    tpot_gap = [(b.tpot_s - a.tpot_s) * 1000 for a, b in pairs if a.output_tokens > 1]
    lines = [
        f"### Policy `{policy}`", "", *comparison_table(d, r), "",
        f"- same replica as the DES for the same request: {same * 100:.1f}%; {first_divergence(des, real)}",
        (f"- per request on the same replica, real - DES: TTFT p10/p50/p90 {_p(ttft_gap, 0.1):+.1f} / "
        f"{_p(ttft_gap, 0.5):+.1f} / {_p(ttft_gap, 0.9):+.1f} ms; TPOT p10/p50/p90 {_p(tpot_gap, 0.1):+.2f} / "
        f"{_p(tpot_gap, 0.5):+.2f} / {_p(tpot_gap, 0.9):+.2f} ms"),
        (f"- real run: {len(errors)} errors; output tokens as planned (usage == max_tokens) for {planned} of "
        f"{len(real)}; client send lateness p50 {_p(late, 0.5):.2f} ms, max {late[-1]:.1f} ms; the gateway's own "
        f"time to first byte (x-maas-overhead-ms) p50 {_p(overhead, 0.5):.2f} ms, p90 {_p(overhead, 0.9):.2f} ms"),
        "- busy seconds per replica, DES / real seen by the client / real seen by the gateway's telemetry: "
        + ", ".join(f"{rid} {des_busy.get(rid, 0.0):.1f} / {client_busy.get(rid, 0.0):.1f} / {gateway_busy[rid]:.1f}"
                    for rid in sorted(gateway_busy)),
        "",
    ]
    if errors:
        lines.insert(-1, f"- first error: {errors[0].error}")
    per_request = [
        {"sent_s": round(b.sent_s, 4), "output_tokens": b.output_tokens,
         "des": [a.replica, round(a.ttft_s * 1000, 2), round(a.tpot_s * 1000, 3)],
         "real": [b.replica, round(b.ttft_s * 1000, 2), round(b.tpot_s * 1000, 3), b.error]}
        for a, b in zip(des, real, strict=True)
    ]
    return lines, {"des": d, "real": r, "same_replica": same, "errors": len(errors), "requests": per_request}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=3.0, help="mean arrivals per second (before --time-scale)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies chip timings, arrival times and the SLO on both sides")
    parser.add_argument("--max-prompt", type=int, default=2048)
    parser.add_argument("--max-output", type=int, default=MAX_OUTPUT)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--json", type=Path, help="also write the numbers and per-request data as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.max_output <= MAX_OUTPUT:
        parser.error(f"--max-output must be in 1..{MAX_OUTPUT} (the simulated replica's longest answer)")

    started = time.perf_counter()
    scale = args.time_scale
    slo = SLO(ttft_ms=SLO().ttft_ms * scale, tpot_ms=SLO().tpot_ms * scale)
    workload = build_workload(load_trace(args.trace, limit=args.requests), args.rate, scale,
                              args.max_prompt, args.max_output)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python -m loadtests.validate_routing_sim", *(shlex.quote(a) for a in given)])
    sections: list[str] = []
    numbers: dict[str, object] = {}
    for policy in args.policies.split(","):
        print(f"{policy}: {len(workload)} requests in real time through the gateway ...", flush=True)
        real, gateway_busy = run_gateway(workload, policy, slo, scale)
        planned = sum(o.output_tokens == a.output_tokens for o, a in zip(real, workload, strict=True) if not o.error)
        outputs = [a.output_tokens if o.error else o.output_tokens for o, a in zip(real, workload, strict=True)]
        des = simulate(workload, outputs, policy, slo, scale)
        lines, numbers[policy] = report_section(policy, des, real, gateway_busy, slo, planned)
        sections += lines
        print("\n".join(lines), flush=True)

    n = len(workload)
    header = [
        "## Routing simulation vs the real gateway (simulated replicas, real time)", "",
        (f"Workload: the first {n} requests of the Azure LLM inference trace 2023 (conversation), arrivals rescaled "
        f"to a mean {args.rate:g} req/s, prompts capped at {args.max_prompt} tokens (mean "
        f"{sum(a.prompt_tokens for a in workload) / n:.0f}), outputs capped at {args.max_output} (mean "
        f"{sum(a.output_tokens for a in workload) / n:.0f}; the simulated replica never writes more than "
        f"{MAX_OUTPUT}). time_scale {scale:g} on chip timings, arrivals and SLO alike (the router sees the scaled "
        f"profiles, on both sides). Pool: one **simulated** replica each of {', '.join(POOL)} (profiles of "
        f"`backends/chips.py`). SLO: TTFT <= {slo.ttft_ms:g} ms and TPOT <= {slo.tpot_ms:g} ms. DES: "
        "`loadtests.routing_sim` with the same policy objects. Real: `python -m gateway.cli serve` with those replicas "
        "as `backend: simulated`, an open-loop aiohttp client streaming `/v1/completions` at each arrival time; TTFT "
        "and TPOT as the client saw them. Both sides: busy time = union of [sent, last token] per replica, cost = "
        "busy s x $/h per 1M output tokens. Each prompt has exactly its token count for the replica and for the "
        "gateway's estimate, and each request's `seed` makes the replica write exactly `max_tokens` (checked below)."),
        "",
    ]
    footer = [SOURCES, f"Machine: {machine()}. Command: `{command}` ({time.perf_counter() - started:.0f} s wall).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + sections + footer))
    print(footer[1])
    print(f"wrote {args.out}")
    if args.json:
        args.json.write_bytes(orjson.dumps({"command": command, "policies": numbers}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
