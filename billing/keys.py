"""API keys: created once (the secret is shown once), stored only as a SHA-256 hash.

Secrets look like ``sk-maas-<40 base62 characters>`` (about 238 random bits).
``lookup`` serves from an in-process cache; ``revoke`` evicts at once on this process,
and on every other process within a second through the store's revocation feed
(``billing.revocations``). While no feed is live, entries are kept ``fallback_ttl_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from billing.ledger import SqlStore
from billing.money import from_nano, to_nano
from billing.quotas import BudgetPeriod, RateLimits, check_budget, check_period
from billing.revocations import PollingFeed, PostgresNotifyFeed, channel_for

SECRET_PREFIX = "sk-maas-"
_ALPHABET = string.ascii_letters + string.digits
_SECRET_CHARS = 40
_DISPLAY_CHARS = len(SECRET_PREFIX) + 4
_COLUMNS = (
    "id, tenant, name, prefix, models, created_at, revoked_at, rpm, tpm, concurrent, "
    "budget_nano_usd, budget_period"
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the gateway sees it: never the secret, only its display prefix."""

    id: str
    tenant: str
    name: str | None
    prefix: str
    models: tuple[str, ...] | None
    created_at: float
    revoked_at: float | None
    limits: RateLimits = field(default_factory=RateLimits)
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod = "month"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, *model_names: str) -> bool:
        """Whether the key may call a model known by any of these names (name, alias)."""
        return self.models is None or any(name in self.models for name in model_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for admin listings."""
        return {
            "id": self.id, "tenant": self.tenant, "name": self.name, "prefix": self.prefix,
            "models": None if self.models is None else list(self.models),
            "created_at": self.created_at, "revoked_at": self.revoked_at,
            "rpm": self.limits.rpm, "tpm": self.limits.tpm, "concurrent": self.limits.concurrent,
            "budget_usd": None if self.budget_usd is None else str(self.budget_usd),
            "budget_period": self.budget_period,
        }


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret: the only form in which it is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A fresh random secret."""
    return SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_CHARS))


def looks_like_secret(secret: str) -> bool:
    """Cheap shape check, so garbage never costs a database query."""
    return (
        len(secret) == len(SECRET_PREFIX) + _SECRET_CHARS
        and secret.startswith(SECRET_PREFIX)
        and all(c in _ALPHABET for c in secret[len(SECRET_PREFIX):])
    )


def _key_from_row(row: Sequence[Any]) -> ApiKey:
    models = None if row[4] is None else tuple(orjson.loads(row[4]))
    return ApiKey(
        id=row[0], tenant=row[1], name=row[2], prefix=row[3], models=models,
        created_at=float(row[5]), revoked_at=None if row[6] is None else float(row[6]),
        limits=RateLimits.from_columns(row[7], row[8], row[9]),
        budget_usd=None if row[10] is None else from_nano(int(row[10])),
        budget_period=row[11],
    )


class KeyStore:
    """API keys in the billing database, with a TTL cache in front of lookups."""

    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        cache_ttl_s: float = 10.0,
        miss_ttl_s: float = 2.0,
        cache_size: int = 10_000,
        feed: PollingFeed | PostgresNotifyFeed | None = None,
        fallback_ttl_s: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self.cache_ttl_s = cache_ttl_s
        self.miss_ttl_s = miss_ttl_s
        self.cache_size = cache_size
        self.fallback_ttl_s = fallback_ttl_s
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}
        self.db_lookups = 0
        self._feed = feed
        self._feed_task: asyncio.Task[None] | None = None
        #: None while the feed starts (it catches up on recent revocations itself), then True/False
        self._feed_live: bool | None = None
        self._live_event: asyncio.Event | None = None
        #: bumped by every eviction: a lookup that raced a revocation must not cache what it read
        self._evictions = 0
        self.revocations_seen = 0

    async def create(
        self,
        tenant: str,
        *,
        name: str | None = None,
        models: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        concurrent: int | None = None,
        budget_usd: Decimal | int | str | None = None,
        budget_period: str = "month",
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it with its secret, which is never retrievable again."""
        if not tenant:
            raise ValueError("a key needs a tenant")
        limits = RateLimits(rpm=rpm, tpm=tpm, concurrent=concurrent)
        budget = check_budget(budget_usd)
        period = check_period(budget_period)
        model_names = None if models is None else tuple(dict.fromkeys(models))
        secret = new_secret()
        key = ApiKey(
            id="key_" + "".join(secrets.choice(_ALPHABET) for _ in range(16)),
            tenant=tenant, name=name, prefix=secret[:_DISPLAY_CHARS], models=model_names,
            created_at=self._clock(), revoked_at=None, limits=limits, budget_usd=budget,
            budget_period=period,
        )
        await self._store.execute(
            f"INSERT INTO api_keys (secret_sha256, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            hash_secret(secret), key.id, key.tenant, key.name, key.prefix,
            None if model_names is None else orjson.dumps(list(model_names)).decode(),
            key.created_at, None, rpm, tpm, concurrent,
            None if budget is None else to_nano(budget), period,
        )
        self._cache.pop(hash_secret(secret), None)  # a cached miss must not hide the new key
        return key, secret

    async def lookup(self, secret: str, *, include_revoked: bool = False) -> ApiKey | None:
        """The active key for a secret, or None (unknown, or revoked unless ``include_revoked``)."""
        if not looks_like_secret(secret):
            return None
        if self._feed is not None and self._feed_task is None:
            # started by the first lookup: only a serving process needs to hear of revocations
            self._feed_task = asyncio.get_running_loop().create_task(self._feed.run(self), name="key-revocations")
        digest = hash_secret(secret)
        now = self._monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(digest)
            key = cached[1]
        else:
            # concurrent misses for one secret share one query
            loading = self._loading.get(digest)
            if loading is None:
                loading = asyncio.get_running_loop().create_future()
                self._loading[digest] = loading
                evictions = self._evictions
                try:
                    key = await self._load(digest)
                except BaseException as exc:
                    loading.set_exception(exc)
                    loading.exception()  # retrieved: the waiters re-raise it themselves
                    raise
                finally:
                    self._loading.pop(digest, None)
                loading.set_result(key)
                if evictions == self._evictions:
                    self._remember(digest, key, now + self._ttl(key))
            else:
                key = await asyncio.shield(loading)
        return key if key is not None and (key.active or include_revoked) else None

    async def _load(self, digest: str) -> ApiKey | None:
        self.db_lookups += 1
        row = await self._store.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE secret_sha256 = ?", digest)
        return None if row is None else _key_from_row(row)

    def _ttl(self, key: ApiKey | None) -> float:
        if key is None:
            return self.miss_ttl_s
        if self._feed is not None and self._feed_live is False:
            return min(self.cache_ttl_s, self.fallback_ttl_s)
        return self.cache_ttl_s

    def evict(self, key_id: str) -> None:
        """Forget a key (revoked here or elsewhere): its next lookup reads the database."""
        self._evictions += 1
        self.revocations_seen += 1
        for digest, (_, key) in list(self._cache.items()):
            if key is not None and key.id == key_id:
                del self._cache[digest]

    def feed_live(self, live: bool) -> None:
        """The revocation feed is (again) live, or not; whatever was cached across a gap is dropped."""
        if live and self._feed_live is False:
            self._evictions += 1
            self._cache.clear()
        self._feed_live = live
        if live:
            self._live().set()
        else:
            self._live().clear()

    async def wait_live(self) -> None:
        """Until the revocation feed is live (for tests and readiness checks)."""
        await self._live().wait()

    def _live(self) -> asyncio.Event:
        if self._live_event is None:
            self._live_event = asyncio.Event()
        return self._live_event

    async def close(self) -> None:
        """Stop listening for revocations."""
        if self._feed_task is not None:
            self._feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed_task
            self._feed_task = None

    def _remember(self, digest: str, key: ApiKey | None, expires: float) -> None:
        self._cache[digest] = (expires, key)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def get(self, key_id: str) -> ApiKey | None:
        """A key by id, revoked or not."""
        row = await self._store.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", key_id)
        return None if row is None else _key_from_row(row)

    async def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Keys (all, or a tenant's), oldest first."""
        if tenant is None:
            rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")
        else:
            rows = await self._store.fetch(
                f"SELECT {_COLUMNS} FROM api_keys WHERE tenant = ? ORDER BY created_at, id", tenant
            )
        return [_key_from_row(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such active key.

        Effective at once on this process; other processes hear of it from the database.
        """
        if self._store.dialect == "postgresql":
            # one statement: the notification goes out exactly when the revocation commits
            changed = await self._store.execute(
                "WITH revoked AS (UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id) "
                "SELECT pg_notify(?, id) FROM revoked",
                self._clock(), key_id, channel_for(getattr(self._store, "schema", None)),
            )
        else:
            changed = await self._store.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", self._clock(), key_id
            )
        self.evict(key_id)
        return changed > 0
