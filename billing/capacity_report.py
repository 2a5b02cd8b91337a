"""Honest margins: what the replicas cost (replica-hours) against what requests were charged.

The compute cost the ledger attributes to requests is each request's share of its
replica's busy time; the operator pays for every hour a replica exists (starting,
idle and draining included). The difference is idle capacity, reported as its own
line, so the margin per chip is what the operator really earns:
revenue - replica-hours cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.ledger import GroupCommitLedger
from billing.records import UsageQuery, to_unix
from billing.replica_hours import ReplicaHours

_NANO = Decimal(10**9)


@dataclass(frozen=True, slots=True)
class CapacityLine:
    """One chip (or model): paid capacity, what requests used of it, and the margin."""

    group: str | None
    paid_hours: float
    capacity_cost_nano_usd: int
    attributed_compute_nano_usd: int
    revenue_nano_usd: int

    @property
    def idle_capacity_nano_usd(self) -> int:
        return max(0, self.capacity_cost_nano_usd - self.attributed_compute_nano_usd)

    def to_dict(self, key: str) -> dict[str, object]:
        return {
            key: self.group,
            "paid_replica_hours": round(self.paid_hours, 4),
            "capacity_cost_usd": str(Decimal(self.capacity_cost_nano_usd) / _NANO),
            "attributed_compute_usd": str(Decimal(self.attributed_compute_nano_usd) / _NANO),
            "idle_capacity_usd": str(Decimal(self.idle_capacity_nano_usd) / _NANO),
            "revenue_usd": str(Decimal(self.revenue_nano_usd) / _NANO),
            "margin_usd": str(Decimal(self.revenue_nano_usd - self.capacity_cost_nano_usd) / _NANO),
        }


async def capacity_lines(
    ledger: GroupCommitLedger, hours: ReplicaHours, *, by: str, since: object = None, until: object = None,
    model: str | None = None, chip: str | None = None,
) -> list[CapacityLine]:
    """Per ``by`` (``chip`` or ``model``): replica-hours cost vs attributed compute and revenue.

    Replica-hours are whole clock hours (the hours [since, until) touches)."""
    start, end = to_unix(since), to_unix(until)  # type: ignore[arg-type]
    paid = {c.group: c for c in await hours.cost(since=start, until=end, group_by=by, model=model, chip=chip)}
    used = {
        row.group[by]: row
        for row in await ledger.usage(UsageQuery(model=model, chip=chip, since=start, until=end, group_by=(by,)))
    }
    lines = []
    for group in sorted({*paid, *used}, key=lambda g: (g is not None, g or "")):
        capacity, usage = paid.get(group), used.get(group)
        lines.append(CapacityLine(
            group,
            (capacity.seconds / 3600) if capacity else 0.0,
            capacity.cost_nano_usd if capacity else 0,
            usage.compute_cost_nano_usd if usage else 0,
            usage.price_nano_usd if usage else 0,
        ))
    return lines
