"""The settlement session: every way a request ends is billed exactly once, and correctly."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from backends.base import Usage
from billing.biller import Biller
from billing.database import open_database
from billing.errors import RateLimitExceeded
from billing.limits import MemoryLimitStore
from billing.prices import PriceBook
from billing.records import UsageRecord
from billing.settlement import BillTicket, SettlementSession
from billing.tokens import StreamMeter, TokenCounter
from gateway.config import LimitsConfig, RateLimit
from tests.test_billing_support import models, sqlite_url  # noqa: F401  (fixtures)

PROMPT_ESTIMATE = 40


class Seen:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def settled(self, record: UsageRecord) -> None:
        self.records.append(record)


@pytest.fixture
async def biller(sqlite_url):
    db = await open_database(sqlite_url)
    limits = MemoryLimitStore()
    yield Biller(db, PriceBook(models()), limits, LimitsConfig(per_key=RateLimit(concurrent=5)))
    await db.close()


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


async def session(biller: Biller, counter: TokenCounter, *, stream: bool = True, seen: Seen | None = None, key=None):
    if key is None:
        key, _ = await biller.db.keys.create("acme")
    admission = await biller.admit(key, "big", prompt_tokens=PROMPT_ESTIMATE, max_tokens=100)
    ticket = BillTicket(f"req-{admission.id}", key, "big", "chat", stream, 1_700_000_000.0)
    bill = SettlementSession(
        biller, admission, ticket, prompt_estimate=PROMPT_ESTIMATE, meter=StreamMeter(counter), observer=seen
    )
    bill.placed("h100-a", "nvidia-h100", Decimal("2.50"))
    return bill


async def record(biller: Biller, bill: SettlementSession) -> UsageRecord:
    await biller.db.ledger.flush()
    found = await biller.db.ledger.get(bill._ticket.request_id)  # noqa: SLF001 - the ticket's id
    assert found is not None
    return found


async def test_a_finished_answer_bills_the_engine_usage_once_durable(biller, counter):
    seen = Seen()
    bill = await session(biller, counter, seen=seen)
    async with bill:
        bill.started()
        bill.meter.add("Hello", 1)
        charge = await bill.finish(Usage(prompt_tokens=12, completion_tokens=2, cached_tokens=4))
        # durable before finish returns: the ledger already has it without a flush
        assert await biller.db.ledger.get(bill._ticket.request_id) is not None  # noqa: SLF001
    row = await record(biller, bill)
    assert (row.status, row.prompt_tokens, row.completion_tokens, row.cached_tokens) == ("ok", 12, 2, 4)
    assert row.price_nano_usd == charge.record.price_nano_usd > 0
    assert seen.records == [charge.record]


async def test_an_answer_without_engine_usage_bills_the_estimate_flagged(biller, counter):
    bill = await session(biller, counter)
    async with bill:
        bill.started()
        for text in ("The quick", " brown fox"):
            bill.meter.add(text, None)
        await bill.finish(None)
    row = await record(biller, bill)
    assert (row.status, row.estimated) == ("ok", True)
    assert (row.prompt_tokens, row.completion_tokens) == (PROMPT_ESTIMATE, counter.count_text("The quick brown fox"))


async def test_stream_cut_midway_by_the_replica_bills_delivered_tokens(biller, counter):
    bill = await session(biller, counter)
    async with bill:
        bill.started()
        for _ in range(7):
            bill.meter.add("tok", 1)
        await bill.cut("replica_unavailable")
    row = await record(biller, bill)
    assert (row.status, row.error_code, row.completion_tokens, row.prompt_tokens) == (
        "partial", "replica_unavailable", 7, PROMPT_ESTIMATE
    )


async def test_a_client_gone_mid_stream_is_billed_for_what_it_got_without_waiting(biller, counter):
    bill = await session(biller, counter)
    delivered = asyncio.Event()

    async def stream() -> None:
        async with bill:
            bill.started()
            bill.meter.add("tok", 1)
            bill.meter.add("tok", 1)
            delivered.set()
            await asyncio.Event().wait()  # the client leaves while we wait for the next chunk

    task = asyncio.create_task(stream())
    await delivered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bill.settled
    row = await record(biller, bill)
    assert (row.status, row.error_code, row.completion_tokens) == ("partial", "client_disconnected", 2)


async def test_a_failure_before_anything_was_delivered_is_recorded_but_not_charged(biller, counter):
    bill = await session(biller, counter, stream=False)

    class Boom(Exception):
        code = "replica_unavailable"

    with pytest.raises(Boom):
        async with bill:
            raise Boom()
    row = await record(biller, bill)
    assert (row.status, row.error_code, row.price_nano_usd, row.completion_tokens) == (
        "error", "replica_unavailable", 0, 0
    )


async def test_settling_releases_the_reservation(biller, counter):
    key, _ = await biller.db.keys.create("acme")
    bills = [await session(biller, counter, key=key) for _ in range(5)]
    with pytest.raises(RateLimitExceeded):  # the key's five concurrent slots are taken
        await biller.admit(key, "big", prompt_tokens=1, max_tokens=1)
    for bill in bills:
        async with bill:
            await bill.finish(Usage(prompt_tokens=1, completion_tokens=1))
    # five concurrent slots of the key were all given back: five more can be admitted
    for _ in range(5):
        await biller.admit(key, "big", prompt_tokens=1, max_tokens=1)


async def test_a_session_settles_exactly_once(biller, counter):
    bill = await session(biller, counter)
    async with bill:
        await bill.finish(Usage(prompt_tokens=1, completion_tokens=1))
    with pytest.raises(RuntimeError):
        await bill.finish(Usage(prompt_tokens=1, completion_tokens=1))
