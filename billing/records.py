"""What the ledger stores and what usage queries return."""

from __future__ import annotations

import functools

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from billing.money import from_nano

#: "reversal" rows cancel the charge of a record written for an answer that was withheld
RecordStatus = Literal["ok", "partial", "error", "reversal"]
#: the error code of a request whose answer was withheld because its record was not durable in time
WITHHELD = "answer_withheld"
GroupBy = Literal["model", "chip", "day", "key", "tenant", "replica", "status"]

GROUP_COLUMNS: dict[str, str] = {
    "model": "model",
    "chip": "chip",
    "day": "day",
    "key": "key_id",
    "tenant": "tenant",
    "replica": "replica",
    "status": "status",
}


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One admitted request, as billed. ``request_id`` makes writes idempotent."""

    request_id: str
    key_id: str | None
    tenant: str
    model: str
    replica: str | None
    chip: str | None
    kind: str
    stream: bool
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    price_nano_usd: int
    compute_cost_nano_usd: int
    status: RecordStatus
    error_code: str | None
    estimated: bool
    started_at: float
    finished_at: float
    ttft_ms: float | None
    latency_ms: float

    @property
    def day(self) -> str:
        """UTC date of ``started_at``: the day a request is reported and budgeted under."""
        return utc_day(self.started_at)

    @property
    def price_usd(self) -> Decimal:
        return from_nano(self.price_nano_usd)

    @property
    def compute_cost_usd(self) -> Decimal:
        return from_nano(self.compute_cost_nano_usd)


def withheld(record: UsageRecord) -> UsageRecord:
    """The record of a request whose answer the client never got: nothing charged, the compute still spent."""
    return replace(
        record, prompt_tokens=0, cached_tokens=0, completion_tokens=0, price_nano_usd=0, status="error",
        error_code=WITHHELD, estimated=False,
    )


def reversal(record: UsageRecord) -> UsageRecord:
    """The append-only cancellation of ``record``'s charge: the same request, every billed amount negated.

    Summed with the record it gives what :func:`withheld` would have stored; it does not count as a request.
    """
    return replace(
        record, request_id=f"{record.request_id}:reversal", prompt_tokens=-record.prompt_tokens,
        cached_tokens=-record.cached_tokens, completion_tokens=-record.completion_tokens,
        price_nano_usd=-record.price_nano_usd, compute_cost_nano_usd=0, status="reversal", error_code=WITHHELD,
        estimated=False,
    )


def utc_day(ts: float) -> str:
    """'YYYY-MM-DD' of a unix time, in UTC."""
    return _utc_day(int(ts // 86400))


@functools.lru_cache(maxsize=64)
def _utc_day(days: int) -> str:
    # every record of a day asks for the same string: one strftime per day, not per record
    return datetime.fromtimestamp(days * 86400, UTC).strftime("%Y-%m-%d")


def to_unix(value: float | str | date | datetime | None) -> float | None:
    """Unix seconds from a number, an ISO date ('2025-11-01') or an ISO datetime (UTC if naive)."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = value.strip().replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Filters and grouping of a usage report. ``since`` inclusive, ``until`` exclusive.

    Times are unix seconds or ISO dates/datetimes (UTC when no zone is given),
    compared with each record's ``started_at``.
    """

    tenant: str | None = None
    key_id: str | None = None
    model: str | None = None
    chip: str | None = None
    since: float | str | date | datetime | None = None
    until: float | str | date | datetime | None = None
    group_by: tuple[GroupBy, ...] = ()

    def __post_init__(self) -> None:
        group = (self.group_by,) if isinstance(self.group_by, str) else tuple(self.group_by)
        for name in group:
            if name not in GROUP_COLUMNS:
                raise ValueError(f"cannot group usage by {name!r}; choose from {sorted(GROUP_COLUMNS)}")
        object.__setattr__(self, "group_by", group)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Sums over the records of one group. ``group`` maps each group_by name to its value."""

    group: dict[str, str | None] = field(default_factory=dict)
    requests: int = 0
    errors: int = 0
    partials: int = 0
    estimated: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    price_nano_usd: int = 0
    compute_cost_nano_usd: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def price_usd(self) -> Decimal:
        return from_nano(self.price_nano_usd)

    @property
    def compute_cost_usd(self) -> Decimal:
        return from_nano(self.compute_cost_nano_usd)

    @property
    def margin_usd(self) -> Decimal:
        """What tenants paid minus what the replicas cost."""
        return from_nano(self.price_nano_usd - self.compute_cost_nano_usd)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; money as strings so no float ever touches it."""
        return {
            **self.group,
            "requests": self.requests,
            "errors": self.errors,
            "partials": self.partials,
            "estimated": self.estimated,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "price_usd": str(self.price_usd),
            "compute_cost_usd": str(self.compute_cost_usd),
            "margin_usd": str(self.margin_usd),
        }
