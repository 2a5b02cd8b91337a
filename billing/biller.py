"""The one billing facade the gateway uses: admit a request, then settle it.

admit  -> checks rate limits and budgets of the key and its tenant, reserving the
          request, its estimated tokens and its worst-case charge (all or nothing).
settle -> prices the real usage, makes the usage record durable, and gives back
          what was reserved but not used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from backends.base import Usage
from billing.database import BillingDatabase
from billing.errors import LedgerUnavailable, QuotaExceeded, RateLimitExceeded
from billing.headers import ratelimit_headers
from billing.keys import ApiKey
from billing.limits import (
    BudgetCheck,
    Check,
    ConcurrencyCheck,
    LimitStore,
    Reservation,
    ReserveResult,
    WindowCheck,
    new_reservation_id,
)
from billing.money import decimal_of, from_nano, to_nano, to_nano_ceiling
from billing.prices import PriceBook
from billing.quotas import RateLimitLike, RateLimits, period_at
from billing.records import RecordStatus, UsageRecord, withheld

if TYPE_CHECKING:
    from billing.settings import LimitsConfig

log = logging.getLogger(__name__)

_SECONDS_PER_HOUR = Decimal(3600)


@dataclass(slots=True)
class Admission:
    """An admitted request: what was reserved, and the x-ratelimit-* headers to send."""

    id: str
    key: ApiKey
    model: str
    admitted_at: float
    reserved_tokens: int
    worst_case_nano_usd: int
    headers: dict[str, str] = field(default_factory=dict)
    reservation: Reservation | None = None
    settled: bool = False

    @property
    def tenant(self) -> str:
        return self.key.tenant


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """How an admitted request ended, as the gateway saw it."""

    request_id: str
    key: ApiKey
    model: str
    replica_id: str | None
    chip: str | None
    replica_cost_per_hour: Decimal
    replica_seconds: float
    kind: str
    stream: bool
    usage: Usage | None
    status: RecordStatus
    error_code: str | None
    started_at: float
    first_token_at: float | None
    finished_at: float


@dataclass(frozen=True, slots=True)
class Settlement:
    """The charge of a settled request and its durable record."""

    cost_usd: Decimal
    record: UsageRecord
    headers: dict[str, str]


@dataclass(slots=True)
class BillerStats:
    """Counters for metrics."""

    admitted: int = 0
    refused_rate: int = 0
    refused_quota: int = 0
    settled: int = 0
    seeds: int = 0
    settle_errors: int = 0


class Biller:
    """Admission control and settlement for every request."""

    def __init__(
        self,
        db: BillingDatabase,
        price_book: PriceBook,
        limits: LimitStore,
        limits_config: LimitsConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        lease_s: float = 900.0,
    ) -> None:
        self.db = db
        self.price_book = price_book
        self.limits = limits
        self._per_key: RateLimitLike | None = getattr(limits_config, "per_key", None)
        self._per_tenant: RateLimitLike | None = getattr(limits_config, "per_tenant", None)
        self._clock = clock
        self.lease_s = lease_s
        self.seed_timeout_s = 5.0
        self.stats = BillerStats()
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, key: ApiKey, model: str, *, prompt_tokens: int, max_tokens: int, n: int = 1) -> Admission:
        """Reserve the request against every limit and budget of the key and its tenant.

        Raises RateLimitExceeded (requests, tokens, concurrency) or QuotaExceeded (budget);
        LimitsUnavailable when the limit store cannot be reached (refused, never unchecked).
        """
        now = self._clock()
        model = self.price_book.canonical(model)
        tenant = await self.db.tenants.get(key.tenant)
        tokens = max(prompt_tokens, 0) + max(max_tokens, 0) * max(n, 1)
        worst = to_nano_ceiling(self.price_book.worst_case(model, key.tenant, prompt_tokens, max_tokens, n))
        checks: list[Check] = []
        seeders: dict[int, dict[str, str]] = {}
        scopes = (
            (f"key:{key.id}", {"key_id": key.id}, key.limits.over(self._per_key), key.budget_usd, key.budget_period),
            (f"tenant:{key.tenant}", {"tenant": key.tenant}, tenant.limits.over(self._per_tenant),
             tenant.budget_usd, tenant.budget_period),
        )
        for scope, owner, limits, budget, period in scopes:
            checks.extend(self._rate_checks(scope, limits, tokens))
            if budget is not None:
                seeders[len(checks)] = owner
                checks.append(BudgetCheck(scope, period_at(period, now), to_nano(budget), worst))
        admission = Admission(new_reservation_id(), key, model, now, tokens, worst)
        if not checks:
            self.stats.admitted += 1
            return admission
        result = await self.limits.reserve(checks, now, reservation_id=admission.id)
        if result.needs_seed:
            result = await self._reserve_seeded(checks, result, seeders, now, admission.id)
        if result.reservation is None:
            raise self._refusal(key, checks, result, now)
        admission.reservation = result.reservation
        admission.headers = ratelimit_headers(checks, result.states, now)
        self.stats.admitted += 1
        return admission

    def _rate_checks(self, scope: str, limits: RateLimits, tokens: int) -> list[Check]:
        checks: list[Check] = []
        if limits.rpm is not None:
            checks.append(WindowCheck("requests", scope, limits.rpm, 1))
        if limits.tpm is not None:
            checks.append(WindowCheck("tokens", scope, limits.tpm, tokens))
        if limits.concurrent is not None:
            checks.append(ConcurrencyCheck(scope, limits.concurrent, self.lease_s))
        return checks

    async def _reserve_seeded(
        self, checks: list[Check], result: ReserveResult, seeders: dict[int, dict[str, str]], now: float,
        reservation_id: str,
    ) -> ReserveResult:
        # Counters are missing after a restart (or at a new period): rebuild them from
        # the ledger, including records this process has queued but not yet written.
        await self.db.ledger.flush(timeout_s=self.seed_timeout_s)
        seeds: dict[int, int] = {}
        for index in result.needs_seed:
            check = checks[index]
            assert isinstance(check, BudgetCheck)
            seeds[index] = await self.db.ledger.spend_nano(
                **seeders[index], since=check.period.start, until=check.period.end
            )
            self.stats.seeds += 1
        return await self.limits.reserve(checks, now, seeds=seeds, reservation_id=reservation_id)

    def _refusal(self, key: ApiKey, checks: list[Check], result: ReserveResult, now: float) -> Exception:
        assert result.failed is not None
        check, state = checks[result.failed], result.states[result.failed]
        who = f"key {key.id}" if check.scope.startswith("key:") else f"tenant {key.tenant}"
        if isinstance(check, BudgetCheck):
            self.stats.refused_quota += 1
            period = "in total" if check.period.id == "total" else f"for {check.period.id}"
            return QuotaExceeded(
                f"Budget of {who} exceeded: spent {from_nano(state.used)} of {from_nano(check.limit)} USD "
                f"{period}; this request could cost up to {from_nano(check.amount)} USD."
            )
        self.stats.refused_rate += 1
        headers = ratelimit_headers(checks[: len(result.states)], result.states, now)
        if isinstance(check, ConcurrencyCheck):
            return RateLimitExceeded(
                f"Too many concurrent requests for {who}: limit {check.limit}.", headers, retry_after=1.0,
                limit="concurrency",
            )
        if check.amount > check.limit:
            return RateLimitExceeded(
                f"Request too large for {who}: it needs {check.amount} {check.name} but the limit is "
                f"{check.limit} per minute.", headers, retry_after=None, limit=check.name,
            )
        retry_after = max((state.reset_at or now) - now, 0.001)
        return RateLimitExceeded(
            f"Rate limit reached for {who}: {check.limit} {check.name} per minute "
            f"(used {state.used}, requested {check.amount}). Retry in {retry_after:.1f}s.",
            headers, retry_after=retry_after, limit=check.name,
        )

    def record(self, admission: Admission, outcome: RequestOutcome) -> UsageRecord:
        """The usage record ``outcome`` would be billed as (nothing written, nothing released)."""
        return self._record(admission, outcome)

    def _record(self, admission: Admission, outcome: RequestOutcome) -> UsageRecord:
        # failed requests are not charged (a stream cut after delivering tokens is "partial")
        usage = Usage() if outcome.status == "error" or outcome.usage is None else outcome.usage
        price = to_nano(self.price_book.charge(admission.model, admission.tenant, usage))
        compute = to_nano(
            decimal_of(outcome.replica_cost_per_hour) * decimal_of(max(outcome.replica_seconds, 0.0))
            / _SECONDS_PER_HOUR
        )
        started, finished = outcome.started_at, outcome.finished_at
        return UsageRecord(
            request_id=outcome.request_id, key_id=admission.key.id, tenant=admission.tenant,
            model=admission.model, replica=outcome.replica_id, chip=outcome.chip, kind=outcome.kind,
            stream=outcome.stream, prompt_tokens=usage.prompt_tokens, cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens, price_nano_usd=price, compute_cost_nano_usd=compute,
            status=outcome.status, error_code=outcome.error_code, estimated=usage.estimated,
            started_at=started, finished_at=finished,
            ttft_ms=None if outcome.first_token_at is None else (outcome.first_token_at - started) * 1000,
            latency_ms=max(finished - started, 0.0) * 1000,
        )

    def _begin_settle(self, admission: Admission) -> None:
        if admission.settled:
            raise RuntimeError(f"admission {admission.id} is already settled")
        admission.settled = True

    async def settle(self, admission: Admission, outcome: RequestOutcome) -> Settlement:
        """Charge the real usage, wait for the record to be durable, release reservations.

        LedgerUnavailable: the record was not durable in time. A non-streamed answer is then
        withheld by the caller and never charged: the ledger voids its record. A stream has
        already delivered its tokens, so its record stays queued and is charged when written.
        """
        self._begin_settle(admission)
        record = self._record(admission, outcome)
        voidable = not outcome.stream
        try:
            await self.db.ledger.append(record, void_on_timeout=voidable)
        except LedgerUnavailable:
            await self._release(admission, withheld(record) if voidable else record)
            raise
        except BaseException:
            await self._release(admission, record)  # still queued: it will be charged
            raise
        await self._release(admission, record)
        self.stats.settled += 1
        cost = from_nano(record.price_nano_usd)
        return Settlement(cost, record, {**admission.headers, "x-maas-cost-usd": str(cost)})

    def settle_nowait(self, admission: Admission, outcome: RequestOutcome) -> UsageRecord:
        """Settle from a cancelled task: the record is queued now, limits settle in the background."""
        self._begin_settle(admission)
        record = self._record(admission, outcome)
        self.db.ledger.submit(record)
        self.stats.settled += 1
        if admission.reservation is not None:
            task = asyncio.get_running_loop().create_task(self._release(admission, record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return record

    async def _release(self, admission: Admission, record: UsageRecord) -> None:
        reservation = admission.reservation
        if reservation is None:
            return
        actual: list[int | None] = []
        for check in reservation.checks:
            if isinstance(check, WindowCheck) and check.name == "tokens":
                actual.append(record.prompt_tokens + record.completion_tokens)
            elif isinstance(check, BudgetCheck):
                actual.append(record.price_nano_usd)
            else:
                actual.append(None)
        try:
            await self.limits.settle(reservation, actual, self._clock())
        except Exception:
            # leases expire and budget holds stay conservative; the record is what bills
            self.stats.settle_errors += 1
            log.exception("settling limits of request %s failed", record.request_id)

    async def close(self) -> None:
        """Wait for background settlements. The database and limit store are closed by their owner."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
