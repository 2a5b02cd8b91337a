"""Usage reports for people: monthly invoices, CSV and plain-text tables.

An invoice line's amount is what the ledger charged (each request priced and
rounded when it was settled); unit prices are today's, shown for reference.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.errors import UnknownModel
from billing.ledger import Ledger
from billing.money import from_nano
from billing.prices import PriceBook
from billing.records import UsageQuery, UsageRow

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One model's usage in the month and what it was charged."""

    model: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    input_per_mtok: Decimal | None
    cached_input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    amount_usd: Decimal

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


@dataclass(frozen=True, slots=True)
class Invoice:
    """A tenant's charges for one calendar month (UTC)."""

    tenant: str
    month: str
    period_start: float
    period_end: float
    lines: tuple[InvoiceLine, ...]
    total_usd: Decimal

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; money as strings."""
        return {
            "tenant": self.tenant, "month": self.month,
            "lines": [
                {
                    "model": line.model, "requests": line.requests, "prompt_tokens": line.prompt_tokens,
                    "cached_tokens": line.cached_tokens, "completion_tokens": line.completion_tokens,
                    "input_per_mtok": _str(line.input_per_mtok),
                    "cached_input_per_mtok": _str(line.cached_input_per_mtok),
                    "output_per_mtok": _str(line.output_per_mtok), "amount_usd": str(line.amount_usd),
                }
                for line in self.lines
            ],
            "total_usd": str(self.total_usd),
        }


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def month_bounds(month: str) -> tuple[float, float]:
    """Unix start (inclusive) and end (exclusive) of a 'YYYY-MM' month in UTC."""
    match = _MONTH.match(month)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"month must look like 2025-11, not {month!r}")
    year, mon = int(match[1]), int(match[2])
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


async def invoice(ledger: Ledger, price_book: PriceBook, tenant: str, month: str) -> Invoice:
    """The tenant's invoice for the month: a line per model, amounts from the ledger."""
    start, end = month_bounds(month)
    rows = await ledger.usage(UsageQuery(tenant=tenant, since=start, until=end, group_by=("model",)))
    lines = []
    for row in rows:
        model = str(row.group["model"])
        try:
            prices = price_book.unit_prices(model, tenant)
            unit = (prices.input_per_mtok, prices.cached_input_per_mtok, prices.output_per_mtok)
        except UnknownModel:
            unit = (None, None, None)  # a model no longer offered still appears on the bill
        lines.append(
            InvoiceLine(
                model=model, requests=row.requests, prompt_tokens=row.prompt_tokens,
                cached_tokens=row.cached_tokens, completion_tokens=row.completion_tokens,
                input_per_mtok=unit[0], cached_input_per_mtok=unit[1], output_per_mtok=unit[2],
                amount_usd=row.price_usd,
            )
        )
    total = from_nano(sum(row.price_nano_usd for row in rows))
    return Invoice(tenant, month, start, end, tuple(lines), total)


def _dicts(rows: Iterable[UsageRow | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [row.to_dict() if isinstance(row, UsageRow) else dict(row) for row in rows]


def to_csv(rows: Iterable[UsageRow | Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as CSV with a header line; columns default to those of the first row."""
    data = _dicts(rows)
    fields = list(columns) if columns is not None else list(data[0]) if data else []
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return out.getvalue()


def format_table(rows: Iterable[UsageRow | Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned plain-text table (numbers right-aligned) for terminals and logs."""
    data = _dicts(rows)
    fields = list(columns) if columns is not None else list(data[0]) if data else []
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in fields] for row in data]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(fields)]
    numeric = [all(_numeric(r[i]) for r in cells) and bool(cells) for i in range(len(fields))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(fields), line(["-" * w for w in widths]), *(line(r) for r in cells)]) + "\n"


def _numeric(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return text == ""
    return True
