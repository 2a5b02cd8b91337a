"""The ledger: durable appends, group commit, idempotency, append-only, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace

import asyncpg
import pytest

from billing.database import open_database, sqlite_path
from billing.schema import LATEST_VERSION
from billing.errors import LedgerUnavailable
from billing.ledger import GroupCommitLedger
from billing.records import UsageQuery, UsageRecord
from tests.test_billing_support import T0, db_url, pg_url, sqlite_url  # noqa: F401  (fixtures)


def record(i: int = 0, **changes) -> UsageRecord:
    base = UsageRecord(
        request_id=f"req-{i}", key_id="key_a", tenant="acme", model="small", replica="cpu-0", chip="cpu",
        kind="chat", stream=False, prompt_tokens=10, cached_tokens=0, completion_tokens=5,
        price_nano_usd=1000, compute_cost_nano_usd=300, status="ok", error_code=None, estimated=False,
        started_at=T0 + i, finished_at=T0 + i + 0.5, ttft_ms=50.0, latency_ms=500.0,
    )
    return replace(base, **changes)


@pytest.fixture
async def db(db_url):
    database = await open_database(db_url)
    yield database
    await database.close()


async def count_rows_on_new_connection(db, url: str) -> int:
    if db.dialect == "sqlite":
        conn = sqlite3.connect(sqlite_path(url))
        try:
            return conn.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0]
        finally:
            conn.close()
    from billing.store_postgres import split_schema

    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return await conn.fetchval("SELECT COUNT(*) FROM usage_records")
    finally:
        await conn.close()


async def test_append_returns_only_once_the_row_is_readable_from_a_new_connection(db, db_url):
    for i in range(3):
        await db.ledger.append(record(i))
        assert await count_rows_on_new_connection(db, db_url) == i + 1


async def test_replayed_write_does_not_double_count(db):
    await db.ledger.append(record(1))
    await db.ledger.append(record(1))
    await asyncio.gather(*(db.ledger.append(record(1)) for _ in range(5)))
    db.ledger.submit(record(1))
    await db.ledger.flush()
    [row] = await db.ledger.usage(UsageQuery())
    assert row.requests == 1
    assert row.price_nano_usd == 1000


async def test_a_replayed_request_id_keeps_the_first_record(db):
    await db.ledger.append(record(1, price_nano_usd=1000))
    await db.ledger.append(record(1, price_nano_usd=999_999))
    stored = await db.ledger.get("req-1")
    assert stored == record(1, price_nano_usd=1000)


async def test_many_concurrent_appends_share_fewer_transactions(db):
    before = db.ledger.stats.transactions
    await asyncio.gather(*(db.ledger.append(record(i)) for i in range(200)))
    transactions = db.ledger.stats.transactions - before
    assert db.ledger.stats.rows_written == 200
    assert await db.ledger.count() == 200
    # all 200 were queued before the flusher first ran: at most a handful of commits
    assert 1 <= transactions <= 5


async def test_batches_never_exceed_max_batch(sqlite_url):
    database = await open_database(sqlite_url, ledger_options={"max_batch": 16})
    sizes: list[int] = []
    database.ledger.on_flush = lambda rows, seconds: sizes.append(rows)
    try:
        await asyncio.gather(*(database.ledger.append(record(i)) for i in range(100)))
    finally:
        await database.close()
    assert sum(sizes) == 100
    assert max(sizes) == 16
    assert len(sizes) == 7


async def test_the_ledger_refuses_updates_and_deletes(db):
    await db.ledger.append(record(1))
    for sql in ("UPDATE usage_records SET price_nano_usd = 0", "DELETE FROM usage_records"):
        with pytest.raises(Exception, match="append-only"):
            await db.store.execute(sql)
    assert (await db.ledger.get("req-1")).price_nano_usd == 1000


async def test_submit_from_a_cancelled_task_still_writes_the_record(db):
    async def handler():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            db.ledger.submit(record(7))
            raise

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await db.ledger.flush()
    assert await db.ledger.get("req-7") == record(7)


async def test_cancelling_an_append_does_not_withdraw_the_record(db):
    task = asyncio.create_task(db.ledger.append(record(8)))
    await asyncio.sleep(0)
    task.cancel()
    await db.ledger.flush()
    assert await db.ledger.get("req-8") is not None


async def test_records_roundtrip_exactly_including_nulls(db):
    original = record(3, key_id=None, replica=None, chip=None, ttft_ms=None, error_code="boom", status="error",
                      stream=True, estimated=True)
    await db.ledger.append(original)
    assert await db.ledger.get("req-3") == original
    assert await db.ledger.records(UsageQuery(tenant="acme")) == [original]


async def test_reopening_does_not_rerun_migrations_and_keeps_rows(sqlite_url):
    first = await open_database(sqlite_url)
    await first.ledger.append(record(1))
    await first.close()
    second = await open_database(sqlite_url)
    try:
        assert await second.ledger.count() == 1
        versions = await second.store.fetch("SELECT version FROM schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)]
    finally:
        await second.close()


async def test_sqlite_runs_in_wal_mode_and_creates_directories(sqlite_url):
    database = await open_database(sqlite_url)
    try:
        assert sqlite_path(sqlite_url).parent.is_dir()
        assert await database.store.fetchrow("PRAGMA journal_mode") == ("wal",)
    finally:
        await database.close()


class FlakyStore:
    """Fails the first ``failures`` batch writes, like a database restarting."""

    dialect = "sqlite"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: dict[str, tuple] = {}

    def rejects(self, exc):
        return False

    async def insert_ignoring_duplicates(self, table, columns, key, rows):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database restarting")
        for row in rows:
            self.rows.setdefault(row[0], row)


async def test_a_failing_database_is_retried_until_the_record_is_durable():
    store = FlakyStore(failures=3)
    ledger = GroupCommitLedger(store, retry_max_s=0.01)
    await ledger.append(record(1))
    assert list(store.rows) == ["req-1"]
    assert ledger.stats.failed_attempts == 3
    await ledger.close()


async def test_append_times_out_but_the_record_stays_queued():
    store = FlakyStore(failures=10**9)
    ledger = GroupCommitLedger(store, retry_max_s=0.01, append_timeout_s=0.05)
    with pytest.raises(LedgerUnavailable):
        await ledger.append(record(1))
    assert ledger.queue_depth == 1
    store.failures = 0
    await ledger.flush()
    assert list(store.rows) == ["req-1"]
    await ledger.close()


async def test_records_that_cannot_be_written_at_close_are_spilled_and_replayed(sqlite_url):
    database = await open_database(sqlite_url)
    database.ledger._store = FlakyStore(failures=10**9)  # the database went away
    database.ledger.submit(record(1))
    database.ledger.submit(record(2))
    await database.close(timeout_s=0.2)
    assert database.spill_path.exists()
    reopened = await open_database(sqlite_url)
    try:
        assert await reopened.ledger.get("req-1") == record(1)
        assert await reopened.ledger.count() == 2
        assert not reopened.spill_path.exists()
    finally:
        await reopened.close()


async def test_a_record_the_database_refuses_does_not_hold_back_the_others(db):
    poison = record(2, model="bad\x00model", price_nano_usd=2**63)  # NUL byte / out of int64 range
    results = await asyncio.gather(
        *(db.ledger.append(r) for r in [record(1), poison, record(3)]), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], LedgerUnavailable)
    assert db.ledger.stats.rejected == 1
    assert [r.request_id for r in await db.ledger.records(UsageQuery())] == ["req-1", "req-3"]
    await db.ledger.append(record(4))  # the ledger keeps working
