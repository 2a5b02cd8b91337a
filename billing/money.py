"""Money units: Decimal USD in code, integer nano-USD (1e-9 USD) in storage.

Integers sum exactly in SQLite, PostgreSQL and Redis alike; a charge is rounded
to whole nano-USD exactly once, when a request is settled.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

NANO_PER_USD = 1_000_000_000
_NANO = Decimal(NANO_PER_USD)


def to_nano(usd: Decimal) -> int:
    """USD to whole nano-USD, rounding half to even (the one rounding of a charge)."""
    return int((usd * _NANO).to_integral_value(rounding=ROUND_HALF_EVEN))


def to_nano_ceiling(usd: Decimal) -> int:
    """USD to whole nano-USD rounded up: for reservations, which must never undershoot."""
    return int((usd * _NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(nano: int) -> Decimal:
    """Integer nano-USD to exact Decimal USD."""
    return Decimal(int(nano)).scaleb(-9)


def decimal_of(value: float | str | Decimal) -> Decimal:
    """A Decimal of what a number prints as (0.1 -> Decimal('0.1'), not its binary expansion)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)
