"""Usage reports and invoices: SQLite and PostgreSQL agree to the nano-dollar."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import replace
from decimal import Decimal

import pytest

from billing.database import open_database
from billing.prices import PriceBook
from billing.records import UsageQuery, UsageRecord, utc_day
from billing.reports import format_table, invoice, month_bounds, to_csv
from tests.test_billing_support import T0, models, pg_url, sqlite_url  # noqa: F401  (fixtures)

DAY = 86_400


def sample_records(count: int = 600, seed: int = 7) -> list[UsageRecord]:
    """A varied month-straddling ledger: tenants, keys, models, chips (some None), statuses."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        status = rng.choice(["ok"] * 8 + ["partial", "error"])
        prompt = 0 if status == "error" else rng.randint(1, 5000)
        completion = 0 if status == "error" else rng.randint(0, 2000)
        records.append(
            UsageRecord(
                request_id=f"r{i:05d}", key_id=rng.choice(["key_a", "key_b", "key_c", None]),
                tenant=rng.choice(["acme", "globex", "Ümlaut", "zeta"]), model=rng.choice(["small", "big"]),
                replica=rng.choice(["cpu-0", "h100-a", None]), chip=rng.choice(["cpu", "nvidia-h100", "ascend-910b", None]),
                kind=rng.choice(["chat", "completion"]), stream=rng.random() < 0.5, prompt_tokens=prompt,
                cached_tokens=rng.randint(0, prompt), completion_tokens=completion,
                price_nano_usd=rng.randint(0, 10**12) if status != "error" else 0,
                compute_cost_nano_usd=rng.randint(0, 10**9), status=status,
                error_code="replica_unavailable" if status == "error" else None, estimated=rng.random() < 0.1,
                # from 3 days before T0 (December) to 3 days after (January)
                started_at=T0 - 3 * DAY + rng.random() * 6 * DAY, finished_at=T0 + 7 * DAY,
                ttft_ms=rng.random() * 500 if status != "error" else None, latency_ms=rng.random() * 9000,
            )
        )
    return records


QUERIES = [
    UsageQuery(),
    *(UsageQuery(group_by=g) for g in ("model", "chip", "day", "key", "tenant", "status")),
    *(UsageQuery(group_by=pair) for pair in itertools.permutations(("model", "chip", "day"), 2)),
    UsageQuery(tenant="acme", group_by=("model", "day")),
    UsageQuery(key_id="key_b", model="big", group_by=("chip",)),
    UsageQuery(chip="nvidia-h100", group_by=("tenant", "key")),
    UsageQuery(since="2026-01-01", group_by=("day",)),
    UsageQuery(since=T0 - DAY, until="2026-01-02T00:00:00Z", group_by=("tenant",)),
    UsageQuery(until="2025-12-31T12:00:00+00:00"),
    UsageQuery(tenant="nobody"),
]


async def test_sqlite_and_postgresql_give_identical_usage_reports(sqlite_url, pg_url):
    records = sample_records()
    dbs = [await open_database(sqlite_url), await open_database(pg_url)]
    try:
        for db in dbs:
            await asyncio.gather(*(db.ledger.append(r) for r in records))
        for query in QUERIES:
            lite, pg = [await db.ledger.usage(query) for db in dbs]
            assert lite == pg, query
        book = PriceBook(models())
        for tenant, month in (("acme", "2025-12"), ("Ümlaut", "2026-01"), ("nobody", "2026-01")):
            assert await invoice(dbs[0].ledger, book, tenant, month) == await invoice(dbs[1].ledger, book, tenant, month)
    finally:
        for db in dbs:
            await db.close()


async def test_usage_sums_match_the_records_exactly(sqlite_url):
    records = sample_records(300, seed=11)
    db = await open_database(sqlite_url)
    try:
        await asyncio.gather(*(db.ledger.append(r) for r in records))
        rows = await db.ledger.usage(UsageQuery(group_by=("tenant", "day")))
        for row in rows:
            mine = [r for r in records if r.tenant == row.group["tenant"] and r.day == row.group["day"]]
            assert row.requests == len(mine)
            assert row.errors == sum(r.status == "error" for r in mine)
            assert row.partials == sum(r.status == "partial" for r in mine)
            assert row.prompt_tokens == sum(r.prompt_tokens for r in mine)
            assert row.cached_tokens == sum(r.cached_tokens for r in mine)
            assert row.price_nano_usd == sum(r.price_nano_usd for r in mine)
            assert row.margin_usd == (sum(r.price_nano_usd - r.compute_cost_nano_usd for r in mine) * Decimal("1e-9"))
        assert sum(r.requests for r in rows) == len(records)
        # groups come sorted, None first
        keys = await db.ledger.usage(UsageQuery(group_by=("key",)))
        assert [r.group["key"] for r in keys] == [None, "key_a", "key_b", "key_c"]
    finally:
        await db.close()


async def test_day_grouping_uses_the_utc_day_of_the_start(sqlite_url):
    base = sample_records(1)[0]
    db = await open_database(sqlite_url)
    try:
        await db.ledger.append(replace(base, request_id="late", started_at=T0 - 0.001))
        await db.ledger.append(replace(base, request_id="early", started_at=T0))
        rows = await db.ledger.usage(UsageQuery(group_by=("day",)))
        assert [r.group["day"] for r in rows] == ["2025-12-31", "2026-01-01"]
        assert utc_day(T0) == "2026-01-01"
    finally:
        await db.close()


async def test_invoice_lines_per_model_with_unit_prices_and_ledger_amounts(sqlite_url):
    records = [r for r in sample_records() if r.tenant == "acme"]
    db = await open_database(sqlite_url)
    try:
        await asyncio.gather(*(db.ledger.append(r) for r in records))
        inv = await invoice(db.ledger, PriceBook(models()), "acme", "2026-01")
    finally:
        await db.close()
    start, end = month_bounds("2026-01")
    january = [r for r in records if start <= r.started_at < end]
    assert [line.model for line in inv.lines] == ["big", "small"]
    small = inv.lines[1]
    assert small.requests == sum(r.model == "small" for r in january)
    assert small.input_per_mtok == Decimal("0.05") and small.cached_input_per_mtok == Decimal("0.01")
    assert small.amount_usd == sum(r.price_nano_usd for r in january if r.model == "small") * Decimal("1e-9")
    assert inv.total_usd == sum(line.amount_usd for line in inv.lines)
    assert inv.to_dict()["total_usd"] == str(inv.total_usd)


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "January", ""])
def test_invoice_months_are_validated(month):
    with pytest.raises(ValueError):
        month_bounds(month)


def test_december_runs_to_the_first_of_january():
    start, end = month_bounds("2025-12")
    assert (start, end) == (T0 - 31 * DAY, T0)


def test_unknown_group_by_is_refused():
    with pytest.raises(ValueError, match="cannot group"):
        UsageQuery(group_by=("colour",))


async def test_csv_and_table_rendering(sqlite_url):
    db = await open_database(sqlite_url)
    try:
        await asyncio.gather(*(db.ledger.append(r) for r in sample_records(50)))
        rows = await db.ledger.usage(UsageQuery(group_by=("model",)))
    finally:
        await db.close()
    text = to_csv(rows)
    header, *lines = text.splitlines()
    assert header.startswith("model,requests,errors")
    assert [line.split(",")[0] for line in lines] == ["big", "small"]
    table = format_table(rows, ["model", "requests", "price_usd"])
    assert table.splitlines()[0].split() == ["model", "requests", "price_usd"]
    assert len(table.splitlines()) == 4
    assert to_csv([]) == "\n"
