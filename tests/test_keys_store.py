"""API keys: shown once, stored as a hash only, cached lookups, revocation, restrictions."""

from __future__ import annotations

import asyncio
import hashlib
import time
from decimal import Decimal

import pytest

from billing.database import open_database
from billing.keys import SECRET_PREFIX, KeyStore
from billing.quotas import RateLimits
from billing.revocations import feed_for
from tests.fakes.gated_store import GatedStore
from tests.test_billing_support import db_url, pg_url, sqlite_url  # noqa: F401  (fixtures)


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(db_url):
    database = await open_database(db_url)
    yield database
    await database.close()


async def test_secret_is_returned_once_and_only_its_hash_is_stored(db):
    key, secret = await db.keys.create("acme", name="ci")
    assert secret.startswith(SECRET_PREFIX) and len(secret) == len(SECRET_PREFIX) + 40
    rows = await db.store.fetch("SELECT * FROM api_keys")
    assert len(rows) == 1
    flat = [str(v) for v in rows[0]]
    assert secret not in flat
    assert not any(secret[len(SECRET_PREFIX):] in v for v in flat)
    assert hashlib.sha256(secret.encode()).hexdigest() in flat
    assert key.prefix == secret[: len(SECRET_PREFIX) + 4]
    # nothing the store hands out carries the secret
    assert secret not in repr(await db.keys.get(key.id))
    assert secret not in repr(await db.keys.list())


async def test_lookup_finds_the_key_by_its_secret(db):
    key, secret = await db.keys.create("acme", name="ci")
    assert await db.keys.lookup(secret) == key
    assert await db.keys.lookup(secret[:-1] + ("a" if secret[-1] != "a" else "b")) is None
    assert await db.keys.lookup("not-a-key") is None
    assert await db.keys.lookup("") is None


async def test_each_key_gets_a_distinct_secret_and_id(db):
    made = [await db.keys.create("acme") for _ in range(20)]
    assert len({k.id for k, _ in made}) == 20
    assert len({s for _, s in made}) == 20


async def test_revoke_takes_effect_at_once_on_this_process(db):
    key, secret = await db.keys.create("acme")
    assert await db.keys.lookup(secret) is not None  # now cached
    assert await db.keys.revoke(key.id) is True
    assert await db.keys.lookup(secret) is None
    assert (await db.keys.get(key.id)).revoked_at is not None
    assert await db.keys.revoke(key.id) is False
    assert await db.keys.revoke("key_missing") is False


async def test_revoke_on_another_process_applies_within_the_cache_ttl(db):
    ticker = Ticker()
    here = KeyStore(db.store, monotonic=ticker, cache_ttl_s=10)
    elsewhere = KeyStore(db.store)
    key, secret = await here.create("acme")
    assert await here.lookup(secret) is not None
    await elsewhere.revoke(key.id)
    assert await here.lookup(secret) is not None  # still cached
    ticker.now += 10.1
    assert await here.lookup(secret) is None


async def test_lookups_are_cached_and_misses_are_cached_briefly(db):
    ticker = Ticker()
    keys = KeyStore(db.store, monotonic=ticker, cache_ttl_s=10, miss_ttl_s=2)
    _, secret = await keys.create("acme")
    for _ in range(5):
        await keys.lookup(secret)
    assert keys.db_lookups == 1
    unknown = SECRET_PREFIX + "x" * 40
    for _ in range(5):
        assert await keys.lookup(unknown) is None
    assert keys.db_lookups == 2
    ticker.now += 2.1
    await keys.lookup(unknown)
    assert keys.db_lookups == 3


async def test_concurrent_lookups_of_a_cold_key_share_one_query(db):
    keys = KeyStore(db.store)
    _, secret = await keys.create("acme")
    found = await asyncio.gather(*(keys.lookup(secret) for _ in range(20)))
    assert all(k is not None for k in found)
    assert keys.db_lookups == 1


async def test_model_restriction_limits_and_budget_are_stored(db):
    key, secret = await db.keys.create(
        "acme", name="batch", models=["small", "big", "small"], rpm=60, tpm=10_000, concurrent=4,
        budget_usd=Decimal("12.345678901"), budget_period="day",
    )
    loaded = await db.keys.lookup(secret)
    assert loaded == key
    assert loaded.models == ("small", "big")
    assert loaded.allows("big") and not loaded.allows("other")
    assert loaded.limits == RateLimits(rpm=60, tpm=10_000, concurrent=4)
    assert loaded.budget_usd == Decimal("12.345678901")
    assert loaded.budget_period == "day"
    unrestricted, _ = await db.keys.create("acme")
    assert unrestricted.models is None and unrestricted.allows("anything")


async def test_list_filters_by_tenant(db):
    a, _ = await db.keys.create("acme")
    b, _ = await db.keys.create("globex")
    assert [k.id for k in await db.keys.list("acme")] == [a.id]
    assert {k.id for k in await db.keys.list()} == {a.id, b.id}


@pytest.mark.parametrize(
    "bad",
    [
        {"tenant": ""},
        {"rpm": -1},
        {"budget_usd": 1.5},  # money is never a float
        {"budget_usd": "-2"},
        {"budget_period": "week"},
    ],
)
async def test_invalid_key_settings_are_refused(db, bad):
    bad = dict(bad)
    tenant = bad.pop("tenant", "acme")
    with pytest.raises((ValueError, TypeError)):
        await db.keys.create(tenant, **bad)
    assert await db.keys.list() == []


async def test_tenant_budget_and_limits_are_stored_and_defaults_apply(db):
    assert (await db.tenants.get("acme")).budget_usd is None
    await db.tenants.set_budget("acme", Decimal(100), "month")
    await db.tenants.set_limits("acme", rpm=1000, concurrent=10)
    tenant = await db.tenants.get("acme")
    assert tenant.budget_usd == Decimal(100) and tenant.budget_period == "month"
    assert tenant.limits == RateLimits(rpm=1000, tpm=None, concurrent=10)
    await db.tenants.set_budget("acme", None)
    assert (await db.tenants.get("acme")).budget_usd is None
    assert [t.tenant for t in await db.tenants.list()] == ["acme"]


async def _until_refused(keys: KeyStore, secret: str, within_s: float = 1.0) -> float:
    """Seconds until ``keys`` stops returning the key for ``secret`` (each try a real lookup)."""
    started = time.monotonic()
    while await keys.lookup(secret) is not None:
        assert time.monotonic() - started < within_s, "the revocation did not arrive"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_revocation_on_another_store_reaches_a_long_lived_cache_through_the_database(db):
    # a cache that would keep the key for 1000 s: only the database's revocation feed can explain a refusal
    here = KeyStore(db.store, cache_ttl_s=1000, feed=feed_for(db.store))
    elsewhere = KeyStore(db.store)  # as `maas keys revoke` does: no cache, no feed
    key, secret = await elsewhere.create("acme")
    try:
        assert await here.lookup(secret) is not None
        await here.wait_live()
        assert await here.lookup(secret) is not None and here.db_lookups == 1  # served from the cache
        await elsewhere.revoke(key.id)
        await _until_refused(here, secret)
        assert here.revocations_seen >= 1
    finally:
        await here.close()


async def test_a_lookup_racing_a_revocation_does_not_cache_what_it_read(db):
    gate = GatedStore(db.store)
    keys = KeyStore(gate, cache_ttl_s=1000)
    key, secret = await keys.create("acme")
    gate.hold_reads()
    lookup = asyncio.create_task(keys.lookup(secret))
    await gate.reading.wait()  # the lookup is reading the key, still active in the database
    await keys.revoke(key.id)
    gate.release_reads()
    assert await lookup is not None  # it read the key just before the revocation
    assert await keys.lookup(secret) is None  # but did not cache it

