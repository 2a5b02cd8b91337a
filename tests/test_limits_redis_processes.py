"""Several gateway processes sharing one Redis never admit more than a limit together."""

from __future__ import annotations

import asyncio
import multiprocessing
from decimal import Decimal

import pytest

from tests.test_billing_support import REDIS_URL, T0, redis_prefix, sqlite_url  # noqa: F401  (fixtures)

PROCESSES = 3
ATTEMPTS = 30  # per process


def gateway_process(db_url: str, prefix: str, key, rpm: int | None, barrier, results) -> None:
    """One gateway: its own Biller and Redis connection, the shared database and Redis."""
    from billing.biller import Biller
    from billing.database import open_database
    from billing.errors import QuotaExceeded, RateLimitExceeded
    from billing.limits_redis import RedisLimitStore
    from billing.prices import PriceBook
    from gateway.config import LimitsConfig, RateLimit
    from tests.test_billing_support import models

    async def run() -> int:
        db = await open_database(db_url)
        limits = RedisLimitStore.from_url(REDIS_URL, prefix=prefix)
        # a frozen clock: every attempt falls in the same minute, however slow the machine
        biller = Biller(db, PriceBook(models()), limits, LimitsConfig(per_key=RateLimit(rpm=rpm)), clock=lambda: T0 + 5)
        await limits._client.ping()
        barrier.wait()
        outcomes = await asyncio.gather(
            *(biller.admit(key, "big", prompt_tokens=1000, max_tokens=100) for _ in range(ATTEMPTS)),
            return_exceptions=True,
        )
        await limits.close()
        await db.close()
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, (RateLimitExceeded, QuotaExceeded)):
                raise outcome
        return sum(not isinstance(o, BaseException) for o in outcomes)

    results.put(asyncio.run(run()))


def run_gateways(db_url: str, prefix: str, key, rpm: int | None) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=gateway_process, args=(db_url, prefix, key, rpm, barrier, results))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    counts = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return counts


async def create_key(db_url: str, **settings):
    from billing.database import open_database

    db = await open_database(db_url)
    try:
        key, _ = await db.keys.create("acme", **settings)
    finally:
        await db.close()
    return key


@pytest.mark.slow
async def test_three_processes_sharing_redis_admit_no_more_than_the_rpm_limit(sqlite_url, redis_prefix):
    key = await create_key(sqlite_url)
    counts = await asyncio.to_thread(run_gateways, sqlite_url, redis_prefix, key, 25)
    assert sum(counts) == 25  # 90 attempts, exactly the limit admitted
    assert len(counts) == PROCESSES


@pytest.mark.slow
async def test_three_processes_sharing_redis_never_overrun_a_budget(sqlite_url, redis_prefix):
    # worst case of each attempt: 1000 * 3 / 1e6 + 100 * 15 / 1e6 = 0.0045 USD
    key = await create_key(sqlite_url, budget_usd=Decimal("0.0045") * 10)
    counts = await asyncio.to_thread(run_gateways, sqlite_url, redis_prefix, key, None)
    assert sum(counts) == 10
