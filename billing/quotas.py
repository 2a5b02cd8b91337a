"""What a key or a tenant is allowed: rate-limit overrides, a budget, and budget periods.

Periods are UTC calendar days and months, or "total" (never resets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, Protocol

BudgetPeriod = Literal["day", "month", "total"]
BUDGET_PERIODS: tuple[str, ...] = ("day", "month", "total")
#: the largest limit (rpm, tpm, concurrent) a BIGINT column and a Redis integer hold
MAX_LIMIT = 2**63 - 1
#: the largest budget whose nano-USD fit a BIGINT column (about 9.2 billion USD)
MAX_BUDGET_USD = Decimal(MAX_LIMIT).scaleb(-9)


class RateLimitLike(Protocol):
    """Shaped like gateway.config.RateLimit."""

    rpm: int | None
    tpm: int | None
    concurrent: int | None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests/minute, tokens/minute, requests in flight. None = use the configured default."""

    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "concurrent"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 0 <= value <= MAX_LIMIT):
                raise ValueError(f"{name} must be an integer from 0 to {MAX_LIMIT} or None, not {value!r}")

    @classmethod
    def from_columns(cls, rpm: object, tpm: object, concurrent: object) -> RateLimits:
        """From nullable database columns (drivers may hand back any integer type)."""
        return cls(*(None if v is None else int(v) for v in (rpm, tpm, concurrent)))  # type: ignore[call-overload]

    def over(self, default: RateLimitLike | None) -> RateLimits:
        """These overrides on top of a default (a config RateLimit)."""
        if default is None:
            return self
        return RateLimits(
            rpm=self.rpm if self.rpm is not None else default.rpm,
            tpm=self.tpm if self.tpm is not None else default.tpm,
            concurrent=self.concurrent if self.concurrent is not None else default.concurrent,
        )


@dataclass(frozen=True, slots=True)
class Period:
    """One budget period: ``id`` names it in counter keys ('2025-11', '2025-11-03', 'total')."""

    id: str
    start: float | None
    end: float | None


def check_period(period: str) -> BudgetPeriod:
    """Validate a budget period name."""
    if period not in BUDGET_PERIODS:
        raise ValueError(f"budget period must be one of {BUDGET_PERIODS}, not {period!r}")
    return period  # type: ignore[return-value]


def period_at(period: str, now: float) -> Period:
    """The budget period containing unix time ``now``."""
    check_period(period)
    if period == "total":
        return Period("total", None, None)
    t = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = datetime(t.year, t.month, t.day, tzinfo=UTC)
        end = start.timestamp() + 86_400
        return Period(start.strftime("%Y-%m-%d"), start.timestamp(), end)
    start = datetime(t.year, t.month, 1, tzinfo=UTC)
    following = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)
    return Period(start.strftime("%Y-%m"), start.timestamp(), following.timestamp())


def check_budget(budget_usd: Decimal | int | str | None) -> Decimal | None:
    """A budget as a non-negative Decimal (floats refused: money is never a float)."""
    if budget_usd is None:
        return None
    if isinstance(budget_usd, float):
        raise TypeError("budget_usd must be a Decimal, int or str, not float")
    try:
        value = Decimal(budget_usd)
    except ArithmeticError:
        raise ValueError(f"budget_usd must be an amount in USD, not {budget_usd!r}") from None
    if not value.is_finite() or not 0 <= value <= MAX_BUDGET_USD:
        raise ValueError(f"budget_usd must be an amount from 0 to {MAX_BUDGET_USD} USD, not {budget_usd!r}")
    return value
