"""The Biller: admission against limits and budgets, settlement into the ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from backends.base import Usage
from billing.biller import Biller, RequestOutcome
from billing.database import open_database
from billing.errors import QuotaExceeded, RateLimitExceeded
from billing.headers import format_reset
from billing.limits import MemoryLimitStore
from billing.limits_redis import RedisLimitStore
from billing.money import to_nano_ceiling
from billing.prices import PriceBook
from billing.records import UsageQuery
from gateway.config import LimitsConfig, RateLimit
from tests.test_billing_support import (  # noqa: F401  (fixtures)
    REDIS_URL,
    T0,
    FakeClock,
    clock,
    models,
    redis_prefix,
    sqlite_url,
)

BOOK = PriceBook(models())
# worst case of the requests below on "big": 1000 * 3 + 100 * 15 = 4500 USD/M = 0.0045 USD
WORST = Decimal("0.0045")


@pytest.fixture
async def db(sqlite_url, clock):
    database = await open_database(sqlite_url, clock=clock)
    yield database
    await database.close()


@pytest.fixture(params=["memory", "redis"])
async def limits(request):
    if request.param == "memory":
        yield MemoryLimitStore()
        return
    store = RedisLimitStore.from_url(REDIS_URL, prefix=request.getfixturevalue("redis_prefix"))
    yield store
    await store.close()


def make_biller(db, limits, clock, **per_key) -> Biller:
    return Biller(db, BOOK, limits, LimitsConfig(per_key=RateLimit(**per_key)), clock=clock)


def outcome(admission, i: int = 0, *, usage=None, status="ok", seconds=2.0, **kw) -> RequestOutcome:
    started = admission.admitted_at
    fields = dict(
        request_id=f"req-{admission.id}-{i}", key=admission.key, model=admission.model, replica_id="h100-a",
        chip="nvidia-h100", replica_cost_per_hour=Decimal("2.50"), replica_seconds=seconds, kind="chat",
        stream=False, usage=Usage(prompt_tokens=1000, completion_tokens=100) if usage is None else usage,
        status=status, error_code=None, started_at=started, first_token_at=started + 0.25,
        finished_at=started + seconds,
    )
    fields.update(kw)
    return RequestOutcome(**fields)


async def admit(biller, key, model="big", prompt=1000, max_tokens=100, n=1):
    return await biller.admit(key, model, prompt_tokens=prompt, max_tokens=max_tokens, n=n)


async def test_settle_charges_the_engine_usage_and_writes_a_durable_record(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key)
    settlement = await biller.settle(
        admission, outcome(admission, usage=Usage(prompt_tokens=1000, cached_tokens=0, completion_tokens=37))
    )
    assert settlement.cost_usd == Decimal("0.003555")  # 1000*3/1e6 + 37*15/1e6
    assert settlement.headers["x-maas-cost-usd"] == "0.003555000"
    stored = await db.ledger.get(settlement.record.request_id)
    assert stored == settlement.record
    assert stored.price_nano_usd == 3_555_000
    # 2.50 USD/h for 2 s = 0.0013888... USD, rounded half-even to nano
    assert stored.compute_cost_nano_usd == 1_388_889
    assert stored.ttft_ms == 250.0 and stored.latency_ms == 2000.0
    assert (stored.key_id, stored.tenant, stored.model, stored.chip) == (key.id, "acme", "big", "nvidia-h100")


async def test_aliases_are_billed_and_recorded_under_the_model_name(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key, model="default")
    settlement = await biller.settle(admission, outcome(admission))
    assert settlement.record.model == "small"


async def test_failed_requests_get_an_error_row_with_no_charge(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key)
    settlement = await biller.settle(
        admission, outcome(admission, status="error", error_code="replica_unavailable", first_token_at=None)
    )
    assert settlement.cost_usd == 0
    record = await db.ledger.get(settlement.record.request_id)
    assert (record.status, record.prompt_tokens, record.completion_tokens, record.price_nano_usd) == ("error", 0, 0, 0)
    assert record.error_code == "replica_unavailable"
    [row] = await db.ledger.usage(UsageQuery(tenant="acme"))
    assert (row.requests, row.errors) == (1, 1)


async def test_an_admission_settles_only_once(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key)
    await biller.settle(admission, outcome(admission))
    with pytest.raises(RuntimeError, match="already settled"):
        await biller.settle(admission, outcome(admission, 1))
    assert await db.ledger.count() == 1


async def test_no_limits_means_no_store_round_trip_and_no_headers(db, clock):
    class Untouchable(MemoryLimitStore):
        async def reserve(self, *a, **k):
            raise AssertionError("no checks, no reservation")

    biller = make_biller(db, Untouchable(), clock)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key)
    assert admission.headers == {} and admission.reservation is None
    await biller.settle(admission, outcome(admission))


async def test_success_headers_follow_openai_names_and_formats(db, limits, clock):
    biller = make_biller(db, limits, clock, rpm=60, tpm=10_000)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key)
    assert admission.headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "50s",  # the clock is 10 s into the minute
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "8900",
        "x-ratelimit-reset-tokens": "50s",
    }


async def test_rpm_limit_refuses_with_retry_after_until_the_window_ends(db, limits, clock):
    biller = make_biller(db, limits, clock, rpm=2)
    key, _ = await db.keys.create("acme")
    await admit(biller, key)
    await admit(biller, key)
    with pytest.raises(RateLimitExceeded) as refused:
        await admit(biller, key)
    exc = refused.value
    assert exc.code == "rate_limit_exceeded"
    assert exc.retry_after == pytest.approx(50.0)
    assert exc.headers["retry-after"] == "50"
    assert exc.headers["x-ratelimit-remaining-requests"] == "0"
    clock.advance(50)
    await admit(biller, key)


async def test_key_override_beats_the_configured_default(db, limits, clock):
    biller = make_biller(db, limits, clock, rpm=1)
    key, _ = await db.keys.create("acme", rpm=3)
    for _ in range(3):
        await admit(biller, key)
    with pytest.raises(RateLimitExceeded):
        await admit(biller, key)


async def test_tenant_limits_apply_across_all_its_keys(db, limits, clock):
    await db.tenants.set_limits("acme", rpm=3)
    biller = make_biller(db, limits, clock)
    keys = [(await db.keys.create("acme"))[0] for _ in range(3)]
    for key in keys:
        await admit(biller, key)
    with pytest.raises(RateLimitExceeded, match="tenant acme"):
        await admit(biller, keys[0])
    other, _ = await db.keys.create("globex")
    await admit(biller, other)


async def test_tpm_reserves_the_estimate_and_settle_returns_what_was_not_used(db, limits, clock):
    biller = make_biller(db, limits, clock, tpm=2000)
    key, _ = await db.keys.create("acme")
    first = await admit(biller, key, prompt=400, max_tokens=1000)  # reserves 1400
    with pytest.raises(RateLimitExceeded, match="tokens"):
        await admit(biller, key, prompt=400, max_tokens=1000)
    await biller.settle(first, outcome(first, usage=Usage(prompt_tokens=400, completion_tokens=20)))
    second = await admit(biller, key, prompt=400, max_tokens=1000)
    assert second.headers["x-ratelimit-remaining-tokens"] == str(2000 - 420 - 1400)


async def test_a_request_larger_than_the_tpm_limit_is_refused_without_retry_after(db, limits, clock):
    biller = make_biller(db, limits, clock, tpm=100)
    key, _ = await db.keys.create("acme")
    with pytest.raises(RateLimitExceeded, match="too large") as refused:
        await admit(biller, key, prompt=50, max_tokens=60)
    assert refused.value.retry_after is None


async def test_concurrency_limit_counts_requests_in_flight(db, limits, clock):
    biller = make_biller(db, limits, clock, concurrent=2)
    key, _ = await db.keys.create("acme")
    a = await admit(biller, key)
    await admit(biller, key)
    with pytest.raises(RateLimitExceeded, match="concurrent"):
        await admit(biller, key)
    await biller.settle(a, outcome(a))
    await admit(biller, key)


async def test_fifty_concurrent_admits_never_push_spend_past_the_budget(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme", budget_usd=WORST * 10)
    results = await asyncio.gather(*(admit(biller, key) for _ in range(50)), return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(admitted) == 10
    assert all(isinstance(r, QuotaExceeded) and r.code == "insufficient_quota" for r in refused)
    # every admitted request uses its whole worst case: spend lands exactly on the budget
    await asyncio.gather(*(biller.settle(a, outcome(a)) for a in admitted))
    spent = await db.ledger.spend_nano(key_id=key.id)
    assert spent == to_nano_ceiling(WORST) * 10 == to_nano_ceiling(WORST * 10)
    with pytest.raises(QuotaExceeded):
        await admit(biller, key)


async def test_cheap_settlements_free_budget_for_more_requests_but_never_overrun(db, limits, clock):
    biller = make_biller(db, limits, clock)
    budget = WORST * 10
    key, _ = await db.keys.create("acme", budget_usd=budget)
    admitted = 0
    for wave in range(6):
        results = await asyncio.gather(*(admit(biller, key) for _ in range(20)), return_exceptions=True)
        batch = [r for r in results if not isinstance(r, BaseException)]
        admitted += len(batch)
        # each actually costs less than its worst case
        await asyncio.gather(
            *(biller.settle(a, outcome(a, i, usage=Usage(prompt_tokens=1000, completion_tokens=10))) for i, a in enumerate(batch))
        )
    spent = await db.ledger.spend_nano(key_id=key.id)
    assert admitted > 10
    assert spent <= to_nano_ceiling(budget)


async def test_tenant_budget_is_shared_by_its_keys(db, limits, clock):
    await db.tenants.set_budget("acme", WORST * 3, "day")
    biller = make_biller(db, limits, clock)
    a, _ = await db.keys.create("acme")
    b, _ = await db.keys.create("acme")
    await admit(biller, a)
    await admit(biller, b)
    await admit(biller, a)
    with pytest.raises(QuotaExceeded, match="tenant acme"):
        await admit(biller, b)


async def wipe(limits):
    """What a restart loses: the memory store entirely, or every Redis counter (Redis keeps nothing on disk)."""
    if isinstance(limits, MemoryLimitStore):
        return MemoryLimitStore()
    keys = [k async for k in limits._client.scan_iter(match=limits.prefix + "*")]
    if keys:
        await limits._client.delete(*keys)
    return limits


async def test_spend_survives_a_restart_by_seeding_from_the_ledger(db, limits, clock):
    key, _ = await db.keys.create("acme", budget_usd=WORST * 3)
    first = make_biller(db, limits, clock)
    for _ in range(2):
        a = await admit(first, key)
        await first.settle(a, outcome(a))
    restarted = make_biller(db, await wipe(limits), clock)
    await admit(restarted, key)
    with pytest.raises(QuotaExceeded):
        await admit(restarted, key)
    assert restarted.stats.seeds == 1  # the key's counter, rebuilt once from the ledger


async def test_settle_nowait_from_a_cancelled_task_bills_and_releases_the_slot(db, limits, clock):
    biller = make_biller(db, limits, clock, concurrent=1)
    key, _ = await db.keys.create("acme")
    admission = await admit(biller, key)

    async def handler():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            biller.settle_nowait(
                admission,
                outcome(admission, usage=Usage(prompt_tokens=1000, completion_tokens=3), status="partial",
                        error_code="client_disconnected"),
            )
            raise

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await biller.close()
    await db.ledger.flush()
    [record] = await db.ledger.records(UsageQuery(key_id=key.id))
    assert (record.status, record.completion_tokens, record.error_code) == ("partial", 3, "client_disconnected")
    assert record.price_nano_usd == 3_045_000
    await admit(biller, key)  # the concurrency slot was given back


async def test_a_new_month_starts_a_new_budget(db, limits, clock):
    clock.now = T0 - 5.0  # 2025-12-31T23:59:55Z
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme", budget_usd=WORST, budget_period="month")
    a = await admit(biller, key)
    await biller.settle(a, outcome(a))
    with pytest.raises(QuotaExceeded, match="2025-12"):
        await admit(biller, key)
    clock.advance(10)
    await admit(biller, key)


async def test_total_budget_never_resets(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme", budget_usd=WORST, budget_period="total")
    a = await admit(biller, key)
    await biller.settle(a, outcome(a))
    clock.advance(400 * 86_400)
    with pytest.raises(QuotaExceeded, match="in total"):
        await admit(biller, key)


async def test_worst_case_covers_every_choice_of_n(db, limits, clock):
    biller = make_biller(db, limits, clock)
    key, _ = await db.keys.create("acme", budget_usd=WORST * 2)
    # n=3 may cost 1000*3/1e6 + 300*15/1e6 = 0.0075 USD: the 0.009 budget fits it once, not twice
    await admit(biller, key, n=3)
    with pytest.raises(QuotaExceeded):
        await admit(biller, key, n=3)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0ms"), (0.0171, "18ms"), (1.0, "1s"), (1.5, "1.5s"), (59.9991, "1m0s"), (360, "6m0s"),
     (3725, "1h2m5s"), (50.0, "50s")],
)
def test_reset_durations_are_written_like_openai(seconds, text):
    assert format_reset(seconds) == text
