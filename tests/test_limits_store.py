"""LimitStore semantics, identical for the in-memory and the Redis store."""

from __future__ import annotations

import asyncio

import pytest

from billing.limits import BudgetCheck, ConcurrencyCheck, MemoryLimitStore, WindowCheck, open_limit_store
from billing.limits_redis import RedisLimitStore
from billing.quotas import period_at
from tests.test_billing_support import REDIS_URL, T0, redis_prefix  # noqa: F401  (fixture)

NOW = T0 + 10.0  # ten seconds into a minute


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    if request.param == "memory":
        yield MemoryLimitStore()
        return
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisLimitStore.from_url(REDIS_URL, prefix=prefix)
    yield redis_store
    await redis_store.close()


def budget(limit: int, amount: int, scope: str = "key:k1", period: str = "month") -> BudgetCheck:
    return BudgetCheck(scope, period_at(period, NOW), limit, amount)


async def test_a_window_admits_exactly_its_limit_and_resets_at_the_window_end(store):
    check = WindowCheck("requests", "key:k1", limit=3, amount=1)
    results = [await store.reserve([check], NOW + i) for i in range(5)]
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert [r.states[0].remaining for r in results[:3]] == [2, 1, 0]
    assert results[0].states[0].reset_at == T0 + 60
    assert results[3].failed == 0 and results[3].states[0].used == 3
    # the next minute starts from zero
    assert (await store.reserve([check], T0 + 60)).ok


async def test_reservation_is_all_or_nothing(store):
    roomy = WindowCheck("requests", "key:k1", limit=100, amount=1)
    full = WindowCheck("tokens", "tenant:t", limit=10, amount=11)
    refused = await store.reserve([roomy, full], NOW)
    assert not refused.ok and refused.failed == 1
    # the first check was not charged for the refused request
    ok = await store.reserve([roomy], NOW)
    assert ok.states[0].used == 1


async def test_settle_returns_unused_tokens_to_the_window(store):
    tokens = WindowCheck("tokens", "key:k1", limit=1000, amount=800)
    first = await store.reserve([tokens], NOW)
    assert not (await store.reserve([tokens], NOW)).ok
    await store.settle(first.reservation, [100], NOW + 1)
    second = await store.reserve([tokens], NOW + 1)
    assert second.ok and second.states[0].used == 900


async def test_settling_after_the_window_ended_leaves_the_new_window_alone(store):
    tokens = WindowCheck("tokens", "key:k1", limit=1000, amount=800)
    first = await store.reserve([tokens], NOW)
    await store.settle(first.reservation, [0], T0 + 61)
    later = await store.reserve([WindowCheck("tokens", "key:k1", limit=1000, amount=1)], T0 + 61)
    assert later.states[0].used == 1


async def test_concurrency_slots_are_released_at_settle(store):
    slot = ConcurrencyCheck("key:k1", limit=2)
    a = await store.reserve([slot], NOW)
    b = await store.reserve([slot], NOW)
    assert a.ok and b.ok
    assert not (await store.reserve([slot], NOW)).ok
    await store.settle(a.reservation, [None], NOW)
    assert (await store.reserve([slot], NOW)).ok


async def test_a_crashed_holder_loses_its_concurrency_slot_when_the_lease_expires(store):
    slot = ConcurrencyCheck("key:k1", limit=1, lease_s=30)
    assert (await store.reserve([slot], NOW)).ok  # never settled: its process died
    assert not (await store.reserve([slot], NOW + 29)).ok
    assert (await store.reserve([slot], NOW + 31)).ok


async def test_a_missing_budget_counter_asks_for_a_seed_and_changes_nothing(store):
    window = WindowCheck("requests", "key:k1", limit=10, amount=1)
    check = budget(limit=1000, amount=100)
    result = await store.reserve([window, check], NOW)
    assert not result.ok and result.needs_seed == (1,)
    seeded = await store.reserve([window, check], NOW, seeds={1: 850})
    assert seeded.ok
    assert seeded.states[0].used == 1  # the first attempt reserved nothing
    assert seeded.states[1].used == 950
    assert await store.spent(check) == 950
    # a later seed for an existing counter is ignored
    assert not (await store.reserve([check], NOW, seeds={0: 0})).ok


async def test_budget_settle_keeps_the_real_charge(store):
    check = budget(limit=1000, amount=400)
    first = await store.reserve([check], NOW, seeds={0: 0})
    await store.settle(first.reservation, [150], NOW)
    assert await store.spent(check) == 150


async def test_settling_against_a_reseeded_counter_counts_the_charge_conservatively(store):
    check = budget(limit=10_000, amount=400)
    first = await store.reserve([check], NOW, seeds={0: 0})
    # the counter is lost (Redis restarted, or this is a fresh process) and rebuilt by another request
    if isinstance(store, MemoryLimitStore):
        store._budgets.clear()
    else:
        await store._client.delete(store.prefix + check.counter)
    await store.reserve([check], NOW, seeds={0: 1000})
    await store.settle(first.reservation, [150], NOW)
    assert await store.spent(check) == 1000 + 400 + 150


async def test_fifty_concurrent_reservations_never_overrun_a_budget(store):
    check = budget(limit=1000, amount=100)
    await store.reserve([budget(limit=1000, amount=0)], NOW, seeds={0: 0})
    results = await asyncio.gather(*(store.reserve([check], NOW) for _ in range(50)))
    assert sum(r.ok for r in results) == 10
    assert await store.spent(check) == 1000


async def test_budget_counters_are_per_period(store):
    day1 = BudgetCheck("key:k1", period_at("day", NOW), 100, 100)
    day2 = BudgetCheck("key:k1", period_at("day", NOW + 86_400), 100, 100)
    assert (await store.reserve([day1], NOW, seeds={0: 0})).ok
    assert not (await store.reserve([day1], NOW)).ok
    assert (await store.reserve([day2], NOW + 86_400, seeds={0: 0})).ok


def test_open_limit_store_picks_the_implementation():
    assert isinstance(open_limit_store("memory"), MemoryLimitStore)
    assert isinstance(open_limit_store(REDIS_URL), RedisLimitStore)
    with pytest.raises(ValueError):
        open_limit_store("memcached://x")


async def test_an_unreachable_redis_refuses_with_limits_unavailable():
    from billing.errors import LimitsUnavailable

    store = RedisLimitStore.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with pytest.raises(LimitsUnavailable) as refused:
            await store.reserve([WindowCheck("requests", "key:k1", 1, 1)], NOW)
        assert refused.value.status == 503
    finally:
        await store.close()
