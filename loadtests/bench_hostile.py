"""Hostile bodies against a running gateway: memory and the other tenants' latency.

A benchmark, not a test (issue 13, item 2). One ``maas serve`` over a simulated
pool; a well-behaved tenant sends paced chat requests (``loadtests.loadgen --rate``)
while a hostile key sends bursts of 20 bodies at once, every ``--every`` seconds
(``--flood``: 20 connections sending back to back, the whole phase):

* 3.7 MB of 110,000 tiny messages (refused on its bracket count, before parsing);
* 3,000 messages of a few bytes (parsed, refused by the message bound);
* a 3 MB tool-call ``arguments`` string (tokenized off the event loop);
* content nested 1,000 deep.

Reported: the gateway's peak RSS during each phase (sampled every 50 ms) against the
baseline phase, and the well-behaved tenant's p50/p99 with and without the attack.
Targets: RSS + < 100 MB, p99 + < 50 ms.

    python -m loadtests.bench_hostile [--seconds 15] [--rate 50] [--flood] [--no-pin]

Like ``bench_overhead``, the gateway runs pinned to one core and the clients (the
attacker, the load generator) to the other, unless ``--no-pin``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil
import yaml

from loadtests.bench_overhead import free_port, start_service
from loadtests.machine import describe_machine

MODEL = "llama-3.1-8b-instruct"
ADMIN_KEY = "bench-admin-key-0123456789abcdef0123456789"


def hostile_bodies() -> list[bytes]:
    tiny = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "a"}] * 110_000})
    many = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "a"}] * 3000})
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "x" * 3_000_000}}
    args = orjson.dumps({"model": MODEL, "max_tokens": 1, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]})
    deep = b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": ' + b"[" * 1000 + b'"x"' + \
        b"]" * 1000 + b"}]}"
    return [tiny, many, args, deep]


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)  # a sampling period


async def attack(url: str, key: str, seconds: float, *, every: float, flood: bool) -> dict[int, int]:
    bodies = hostile_bodies()
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as http:
        async def one(i: int) -> None:
            try:
                r = await http.post(url + "/v1/chat/completions", content=bodies[i % len(bodies)], headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            except httpx.HTTPError:
                statuses[0] = statuses.get(0, 0) + 1

        async def back_to_back(i: int) -> None:
            while time.monotonic() < deadline:
                await one(i)

        if flood:
            await asyncio.gather(*(back_to_back(i) for i in range(20)))
            return statuses
        while time.monotonic() < deadline:
            burst = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(20)))
            await asyncio.sleep(max(0.0, every - (time.monotonic() - burst)))  # the attacker's own pace
    return statuses


def normal_load(url: str, key: str, seconds: float, rate: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "loadtests.loadgen", "--url", url + "/v1/chat/completions", "--model", MODEL,
         "--connections", "16", "--rate", str(rate), "--duration", str(seconds), "--warmup", "1",
         "--header", f"authorization: Bearer {key}"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=50.0, help="the well-behaved tenant's requests/s")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between bursts of 20 hostile requests")
    parser.add_argument("--flood", action="store_true", help="20 hostile connections back to back instead of bursts")
    parser.add_argument("--client-cpu", type=int, default=0, help="core for the attacker and the well-behaved tenant")
    parser.add_argument("--gateway-cpu", type=int, default=1, help="core for the gateway under test")
    parser.add_argument("--no-pin", action="store_true", help="let every process run on any core")
    args = parser.parse_args(argv)
    if args.no_pin:
        args.client_cpu = args.gateway_cpu = None
    else:
        # the clients' CPU (sending megabytes, measuring) must not be taken from the gateway's core
        os.sched_setaffinity(0, {args.client_cpu})  # this process, its attacker thread and the load generator
    with tempfile.TemporaryDirectory(prefix="maas-hostile-") as tmp:
        work, port = Path(tmp), free_port()
        config = {
            "server": {"port": port, "log_level": "warning"},
            "models": [{"name": MODEL, "price": {"input_per_mtok": "0.2", "output_per_mtok": "0.6"}}],
            "replicas": [{"id": f"sim-{i}", "model": MODEL, "backend": "simulated", "chip": "nvidia-h100",
                          "time_scale": 0.01} for i in range(2)],
            "ledger": f"sqlite:///{work}/ledger.db", "limits": "memory",
        }
        (work / "gw.yaml").write_text(yaml.safe_dump(config))
        gateway = start_service("maas", [sys.executable, "-m", "gateway.cli", "serve", "--config", str(work / "gw.yaml")],
                                url=f"http://127.0.0.1:{port}", ready_path="/readyz", cpu=args.gateway_cpu, workdir=work,
                                env={"MAAS_ADMIN_KEY": ADMIN_KEY, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        try:
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}
            good = httpx.post(gateway.url + "/admin/keys", headers=admin, json={"tenant": "good"}).json()["key"]
            bad = httpx.post(gateway.url + "/admin/keys", headers=admin, json={"tenant": "hostile"}).json()["key"]
            normal_load(gateway.url, good, 3, args.rate)  # warm up
            phases = {}
            for name, hostile in (("baseline", False), ("under attack", True)):
                sampler = RssSampler(gateway.proc.pid)
                sampler.start()
                before = psutil.Process(gateway.proc.pid).memory_info().rss
                attacker = None
                if hostile:
                    attacker = threading.Thread(target=lambda: phases.__setitem__(
                        "statuses", asyncio.run(attack(gateway.url, bad, args.seconds + 1, every=args.every, flood=args.flood))),
                        daemon=True)
                    attacker.start()
                result = normal_load(gateway.url, good, args.seconds, args.rate)
                if attacker is not None:
                    attacker.join()
                sampler.running = False
                sampler.join()
                phases[name] = {"rss_start_mb": round(before / 2**20, 1), "rss_peak_mb": round(sampler.peak / 2**20, 1),
                                "p50_ms": result["latency_ms"]["p50"], "p99_ms": result["latency_ms"]["p99"],
                                "rps": result["rps"], "errors": result["errors"]}
        finally:
            gateway.stop()
    base, hit = phases["baseline"], phases["under attack"]
    rss = hit["rss_peak_mb"] - base["rss_peak_mb"]
    p99 = hit["p99_ms"] - base["p99_ms"]
    print(f"machine: {describe_machine()}\ncommand: python -m loadtests.bench_hostile {' '.join(argv or sys.argv[1:])}")
    for name, phase in (("baseline", base), ("under attack", hit)):
        print(f"{name:13} RSS {phase['rss_start_mb']} -> peak {phase['rss_peak_mb']} MB; good tenant p50 "
              f"{phase['p50_ms']:.2f} ms p99 {phase['p99_ms']:.2f} ms at {phase['rps']} req/s, errors {phase['errors']}")
    print(f"hostile answers by status: {phases.get('statuses')}")
    print(f"RSS +{rss:.1f} MB (target < 100: {'met' if rss < 100 else 'MISSED'}); "
          f"good tenant p99 +{p99:.1f} ms (target < 50: {'met' if p99 < 50 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
