"""Ledger benchmark: group commit vs one transaction per row, and the latency Biller.settle adds.

For each database (SQLite file in WAL mode with synchronous=FULL; PostgreSQL) it
measures, in the same run:
  * sustained insert rate with C concurrent writers through GroupCommitLedger
    (default settings) and through the same ledger with max_batch=1, i.e. one
    transaction per row: the baseline;
  * Biller.settle latency (p50/p99): the time a response waits for pricing, the
    durable ledger append and the limit settlement (in-memory limits, a key with
    rpm, tpm, concurrency and budget), with 1 and with C requests settling at once.

    python -m loadtests.bench_ledger --quick          # ~15 s
    python -m loadtests.bench_ledger --rows 20000 --concurrency 64 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import orjson

from backends.base import Usage
from billing.biller import Biller, RequestOutcome
from billing.database import BillingDatabase, open_database
from billing.limits import MemoryLimitStore
from billing.prices import PriceBook
from billing.records import UsageRecord
from gateway.config import LimitsConfig, ModelConfig, Price, RateLimit
from loadtests.machine import describe_machine

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


def machine() -> str:
    return describe_machine()


def template() -> UsageRecord:
    now = time.time()
    return UsageRecord(
        request_id="", key_id="key_bench", tenant="bench", model="small", replica="cpu-0", chip="cpu", kind="chat",
        stream=True, prompt_tokens=512, cached_tokens=128, completion_tokens=256, price_nano_usd=48_000,
        compute_cost_nano_usd=12_000, status="ok", error_code=None, estimated=False, started_at=now,
        finished_at=now + 1.5, ttft_ms=120.0, latency_ms=1500.0,
    )


async def insert_rate(db: BillingDatabase, rows: int, concurrency: int) -> dict[str, float]:
    """rows/s with `concurrency` writers each appending (and awaiting) its share of rows."""
    base = template()
    per_writer = rows // concurrency
    tx_before = db.ledger.stats.transactions

    async def writer() -> None:
        for _ in range(per_writer):
            await db.ledger.append(replace(base, request_id=uuid.uuid4().hex))

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    written = per_writer * concurrency
    transactions = db.ledger.stats.transactions - tx_before
    return {"rows": written, "seconds": elapsed, "rows_per_s": written / elapsed,
            "transactions": transactions, "rows_per_tx": written / max(transactions, 1)}


async def settle_latency(db: BillingDatabase, requests: int, concurrency: int) -> dict[str, float]:
    """p50/p99 (ms) of Biller.settle with `concurrency` requests settling at once."""
    price = Price(input_per_mtok=Decimal("0.05"), output_per_mtok=Decimal("0.10"))
    book = PriceBook([ModelConfig(name="small", price=price)])
    config = LimitsConfig(per_key=RateLimit(rpm=10**9, tpm=10**12, concurrent=10**6))
    biller = Biller(db, book, MemoryLimitStore(), config)
    key, _ = await db.keys.create("bench", budget_usd=Decimal(10**6))
    samples: list[float] = []

    async def one() -> None:
        admission = await biller.admit(key, "small", prompt_tokens=512, max_tokens=256, n=1)
        now = time.time()
        outcome = RequestOutcome(
            request_id=uuid.uuid4().hex, key=key, model="small", replica_id="cpu-0", chip="cpu",
            replica_cost_per_hour=Decimal("0.08"), replica_seconds=1.5, kind="chat", stream=True,
            usage=Usage(prompt_tokens=512, completion_tokens=200, cached_tokens=128), status="ok", error_code=None,
            started_at=now - 1.5, first_token_at=now - 1.4, finished_at=now,
        )
        started = time.perf_counter()
        await biller.settle(admission, outcome)
        samples.append((time.perf_counter() - started) * 1000)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    await biller.close()
    samples.sort()
    return {
        "requests": len(samples),
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "mean_ms": statistics.fmean(samples),
    }


async def bench_database(url: str, args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    # baseline first, then group commit, each on a fresh database
    for label, options in (("one_tx_per_row", {"max_batch": 1}), ("group_commit", {})):
        db = await open_database(url, ledger_options=options)
        try:
            await insert_rate(db, min(200, args.rows), args.concurrency)  # warm-up
            out[label] = await insert_rate(db, args.rows if label == "group_commit" else args.baseline_rows,
                                           args.concurrency)
        finally:
            await db.close()
        await reset(url)
    db = await open_database(url)
    try:
        out["settle_c1"] = await settle_latency(db, args.settles, 1)
        out[f"settle_c{args.concurrency}"] = await settle_latency(db, args.settles * 4, args.concurrency)
    finally:
        await db.close()
    await reset(url)
    group, single = out["group_commit"], out["one_tx_per_row"]
    out["speedup"] = group["rows_per_s"] / single["rows_per_s"]  # type: ignore[index]
    return out


async def reset(url: str) -> None:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        import asyncpg

        schema = url.split("schema=", 1)[1]
        conn = await asyncpg.connect(PG_BASE)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def main(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in ["python", "-m", "loadtests.bench_ledger", *sys.argv[1:]]),
        "rows": args.rows, "baseline_rows": args.baseline_rows, "concurrency": args.concurrency,
    }
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        urls = {
            "sqlite": f"sqlite:///{tmp}/bench.db",
            "postgresql": f"{PG_BASE}?schema=bench_{uuid.uuid4().hex[:10]}",
        }
        for name in args.databases.split(","):
            results[name] = await bench_database(urls[name], args)
    return results


def report(results: dict[str, object], concurrency: int) -> str:
    lines = [f"machine: {results['machine']}", f"command: {results['command']}", ""]
    lines.append(f"{'database':<11} {'mode':<15} {'rows/s':>9} {'rows/tx':>8}   settle p50 / p99 ms (c=1 | c={concurrency})")
    for name in ("sqlite", "postgresql"):
        r = results.get(name)
        if not isinstance(r, dict):
            continue
        c1, cn = r["settle_c1"], r[f"settle_c{concurrency}"]
        for mode in ("one_tx_per_row", "group_commit"):
            m = r[mode]
            tail = (f"   {c1['p50_ms']:.2f} / {c1['p99_ms']:.2f} | {cn['p50_ms']:.2f} / {cn['p99_ms']:.2f}"
                    if mode == "group_commit" else "")
            lines.append(f"{name:<11} {mode:<15} {m['rows_per_s']:>9.0f} {m['rows_per_tx']:>8.1f}{tail}")
        lines.append(f"{name:<11} {'ratio':<15} {r['speedup']:>8.1f}x  group commit / one transaction per row")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows written with group commit")
    parser.add_argument("--baseline-rows", type=int, default=2_000, help="rows written one transaction each")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--settles", type=int, default=500, help="settles measured at concurrency 1")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="small run (~15 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.baseline_rows, args.settles = 5_000, 1_000, 200
    return args


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    print(report(outcome, arguments.concurrency))
    if arguments.json:
        arguments.json.write_bytes(orjson.dumps(outcome, option=orjson.OPT_INDENT_2))
