"""Replica-hours: what the operator pays for, whether or not a request used it.

Cost is replica-hours x $/hour in every state but stopped (starting, idle and
draining time included). The lifecycle reports, per replica and clock hour, the
seconds it was paid for; the store keeps the larger of what any gateway reported
(several gateways watching one replica never count it twice). Reports compare it
with the compute cost attributed to requests: the difference is idle capacity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.ledger import SqlStore
from billing.money import to_nano

_NANO_PER_USD = 10**9


@dataclass(frozen=True, slots=True)
class PaidSpan:
    """One replica's paid life so far: from ``since`` to ``until`` (unix seconds)."""

    replica_id: str
    model: str
    pool: str | None
    chip: str
    cost_per_hour: Decimal
    since: float
    until: float

    def hours(self) -> list[tuple[int, float]]:
        """(unix hour, paid seconds in it) for every hour the span touches."""
        out = []
        first, last = math.floor(self.since / 3600), math.floor(max(self.since, self.until - 1e-9) / 3600)
        for hour in range(first, last + 1):
            seconds = min(self.until, (hour + 1) * 3600) - max(self.since, hour * 3600)
            if seconds > 0:
                out.append((hour, seconds))
        return out


@dataclass(frozen=True, slots=True)
class CapacityCost:
    """Paid replica time in a period, for one group (e.g. a chip)."""

    group: str | None
    seconds: float
    cost_nano_usd: int

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_nano_usd) / _NANO_PER_USD


class ReplicaHours:
    """The ``replica_hours`` table."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def record(self, spans: Sequence[PaidSpan], *, since_hour: int | None = None) -> None:
        """Write the paid seconds of each span's hours (from ``since_hour`` on); idempotent."""
        rows = []
        for span in spans:
            for hour, seconds in span.hours():
                if since_hour is not None and hour < since_hour:
                    continue
                cost = to_nano(span.cost_per_hour * Decimal(repr(seconds)) / 3600)
                rows.append((span.replica_id, hour, span.model, span.pool, span.chip, seconds, cost))
        if not rows:
            return
        larger = "MAX" if self._store.dialect == "sqlite" else "GREATEST"
        await self._store.execute_many(
            "INSERT INTO replica_hours (replica_id, hour, model, pool, chip, seconds, cost_nano_usd) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (replica_id, hour) DO UPDATE SET "
            f"seconds = {larger}(replica_hours.seconds, excluded.seconds), "
            f"cost_nano_usd = {larger}(replica_hours.cost_nano_usd, excluded.cost_nano_usd)",
            rows,
        )

    async def cost(self, *, since: float | None, until: float | None, group_by: str | None = "chip",
                   model: str | None = None, chip: str | None = None) -> list[CapacityCost]:
        """Paid time and cost of whole hours in [since, until), grouped by ``model``, ``chip`` or ``pool``."""
        if group_by not in (None, "model", "chip", "pool"):
            raise ValueError(f"capacity cost groups by model, chip or pool, not {group_by!r}")
        where, args = [], []
        if since is not None:
            where.append("hour >= ?")
            args.append(math.floor(since / 3600))
        if until is not None:
            where.append("hour < ?")
            args.append(math.ceil(until / 3600))
        for column, value in (("model", model), ("chip", chip)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        select = f"{group_by}, " if group_by else "NULL, "
        sql = f"SELECT {select}SUM(seconds), SUM(cost_nano_usd) FROM replica_hours"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if group_by:
            sql += f" GROUP BY {group_by} ORDER BY {group_by}"
        rows = await self._store.fetch(sql, *args)
        return [CapacityCost(row[0], float(row[1] or 0), int(row[2] or 0)) for row in rows if row[1] is not None]
