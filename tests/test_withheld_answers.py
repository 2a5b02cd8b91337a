"""No charge without an answer: a withheld answer's record is voided, whatever the database does next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from backends.base import Usage
from billing.biller import Biller
from billing.database import BillingDatabase, open_database
from billing.errors import LedgerUnavailable
from billing.limits import MemoryLimitStore
from billing.prices import PriceBook
from billing.records import WITHHELD, UsageQuery
from tests.fakes.gated_store import GatedStore
from tests.live_server import LiveServer, sim_config
from tests.test_billing_biller import outcome
from tests.test_billing_support import db_url, models, pg_url, sqlite_url  # noqa: F401  (fixtures)
from tests.test_ledger_group_commit import record


@pytest.fixture
async def gated(db_url) -> AsyncIterator[tuple[BillingDatabase, GatedStore]]:
    database = await open_database(db_url)
    gate = GatedStore(database.ledger._store)
    database.ledger._store = gate
    database.ledger.append_timeout_s = 0.05
    database.ledger.retry_max_s = 0.01
    yield database, gate
    gate.down = False
    gate.release()
    await database.close()


async def _totals(db: BillingDatabase) -> tuple[int, int, int]:
    [row] = await db.ledger.usage(UsageQuery())
    return row.requests, row.price_nano_usd, row.total_tokens


async def test_record_of_a_withheld_answer_is_written_unbilled_when_the_database_returns(gated) -> None:
    db, gate = gated
    gate.down = True
    with pytest.raises(LedgerUnavailable, match="never charged"):
        await db.ledger.append(record(1), void_on_timeout=True)
    gate.down = False
    await db.ledger.flush()
    stored = await db.ledger.get("req-1")
    assert stored is not None
    assert (stored.status, stored.error_code, stored.price_nano_usd) == ("error", WITHHELD, 0)
    assert stored.compute_cost_nano_usd == record(1).compute_cost_nano_usd  # the replica's time was still spent
    assert await _totals(db) == (1, 0, 0)


async def test_a_queued_record_is_swapped_before_it_is_ever_written(gated) -> None:
    db, gate = gated
    gate.hold()
    db.ledger.submit(record(1))
    await gate.waiting.wait()  # record 1 is inside a transaction; record 2 will wait in the queue
    with pytest.raises(LedgerUnavailable):
        await db.ledger.append(record(2), void_on_timeout=True)
    gate.release()
    await db.ledger.flush()
    assert (await db.ledger.get("req-1")).price_nano_usd == record(1).price_nano_usd
    assert (await db.ledger.get("req-2")).error_code == WITHHELD
    assert await db.ledger.get("req-2:reversal") is None  # nothing to reverse: never written billed


async def test_a_record_committed_after_its_answer_was_withheld_is_reversed(gated) -> None:
    db, gate = gated
    gate.hold()
    append = asyncio.create_task(db.ledger.append(record(1), void_on_timeout=True))
    await gate.waiting.wait()
    with pytest.raises(LedgerUnavailable):
        await append
    gate.release()  # the transaction that was in flight commits the billed row after all
    await db.ledger.flush()
    await db.ledger.flush()  # the reversal queued by that commit
    assert (await db.ledger.get("req-1")).price_nano_usd == record(1).price_nano_usd  # history stays
    reversal = await db.ledger.get("req-1:reversal")
    assert reversal is not None and reversal.price_nano_usd == -record(1).price_nano_usd
    assert await _totals(db) == (1, 0, 0)
    assert await db.ledger.spend_nano(key_id="key_a") == 0


async def test_without_voiding_a_late_record_is_still_charged(gated) -> None:
    db, gate = gated
    gate.down = True
    with pytest.raises(LedgerUnavailable, match="still queued"):
        await db.ledger.append(record(1))
    gate.down = False
    await db.ledger.flush()
    assert await _totals(db) == (1, record(1).price_nano_usd, 15)


async def test_biller_withholds_unbilled_and_gives_the_budget_back(gated) -> None:
    db, gate = gated
    biller = Biller(db, PriceBook(models()), MemoryLimitStore())
    key, _ = await db.keys.create("acme", budget_usd="0.005", budget_period="total")
    first = await biller.admit(key, "big", prompt_tokens=1000, max_tokens=100)
    gate.down = True
    with pytest.raises(LedgerUnavailable):
        await biller.settle(first, outcome(first))
    gate.down = False
    # the budget holds 0.005 USD and one request costs up to 0.0045: only possible if the first charged nothing
    second = await biller.admit(key, "big", prompt_tokens=1000, max_tokens=100)
    await biller.settle(second, outcome(second, usage=Usage(prompt_tokens=1000, completion_tokens=100)))
    await db.ledger.flush()
    assert await db.ledger.spend_nano(key_id=key.id) == 4_500_000


async def test_a_stream_that_delivered_its_tokens_is_still_charged(gated) -> None:
    db, gate = gated
    biller = Biller(db, PriceBook(models()), MemoryLimitStore())
    key, _ = await db.keys.create("acme")
    admission = await biller.admit(key, "big", prompt_tokens=1000, max_tokens=100)
    gate.down = True
    with pytest.raises(LedgerUnavailable):
        await biller.settle(admission, outcome(admission, stream=True))
    gate.down = False
    await db.ledger.flush()
    assert await db.ledger.spend_nano(key_id=key.id) == 4_500_000


@pytest.fixture
def live(tmp_path) -> LiveServer:
    server = LiveServer(sim_config(tmp_path)).start()
    yield server
    server.stop()


def test_client_retrying_a_withheld_answer_pays_once(live: LiveServer) -> None:
    secret = live.create_key("retrier")
    body = {"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    headers = {"authorization": f"Bearer {secret}"}
    ledger = live.gateway.db.ledger
    gate = GatedStore(ledger._store)

    async def database_down() -> None:
        ledger._store = gate
        ledger.append_timeout_s = 0.2
        ledger.retry_max_s = 0.02
        gate.down = True

    live.run(database_down)
    withheld = httpx.post(live.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert withheld.status_code == 503 and withheld.json()["error"]["code"] == "ledger_unavailable"

    async def database_back() -> None:
        gate.down = False
        await ledger.flush()

    live.run(database_back)
    retried = httpx.post(live.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert retried.status_code == 200
    live.run(ledger.flush)
    usage = httpx.get(live.url + "/v1/usage", headers=headers).json()["data"]
    charged = sum(float(row["price_usd"]) for row in usage)
    assert charged == pytest.approx(float(retried.headers["x-maas-cost-usd"]))
    assert sum(row["requests"] for row in usage) == 2 and sum(row["errors"] for row in usage) == 1

