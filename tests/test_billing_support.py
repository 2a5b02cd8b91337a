"""Shared fixtures of the billing tests (this module holds no tests itself).

Each test gets its own SQLite file, its own PostgreSQL schema (dropped after) and
its own Redis key prefix (deleted after), so parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import asyncpg
import pytest

from gateway.config import LimitsConfig, ModelConfig, Price, RateLimit

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a minute, day and month boundary


def models() -> list[ModelConfig]:
    """Two priced models; the small one has a cached-input price."""
    return [
        ModelConfig(
            name="small",
            aliases=["default"],
            price=Price(
                input_per_mtok=Decimal("0.05"), output_per_mtok=Decimal("0.10"),
                cached_input_per_mtok=Decimal("0.01"),
            ),
        ),
        ModelConfig(
            name="big", price=Price(input_per_mtok=Decimal(3), output_per_mtok=Decimal(15))
        ),
    ]


def limits_config(**per_key: int) -> LimitsConfig:
    return LimitsConfig(per_key=RateLimit(**per_key))


class FakeClock:
    """A settable clock for time-dependent behaviour without sleeping."""

    def __init__(self, now: float = T0 + 10.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/ledger/maas.db"


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_BASE)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# Sync fixtures (cleaning up with their own loop) so that parametrized fixtures can
# pick them with request.getfixturevalue.
@pytest.fixture
def pg_url():
    schema = f"maas_test_{uuid.uuid4().hex[:12]}"
    yield f"{PG_BASE}?schema={schema}"
    # a thread of its own: asyncio.run must not touch the test session's event loop
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _drop_schema(schema)).result()


@pytest.fixture
def redis_prefix():
    import redis

    prefix = f"maas-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Each test using it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
