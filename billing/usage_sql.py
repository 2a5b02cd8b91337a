"""SQL for usage reports, written once for both SQLite and PostgreSQL.

Only portable SQL: integer sums and counts, grouping on plain columns (``day`` is
stored, computed in Python). Sorting happens in Python, so the two databases'
different text collations cannot reorder a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from billing.records import GROUP_COLUMNS, UsageQuery, UsageRecord, UsageRow, to_unix

# reversal rows cancel a withheld answer's charge: they add amounts, never a request
_SUMS = (
    "COALESCE(SUM(CASE WHEN status = 'reversal' THEN 0 ELSE 1 END), 0), "
    "COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN status = 'partial' THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(estimated), 0), "
    "COALESCE(SUM(prompt_tokens), 0), "
    "COALESCE(SUM(cached_tokens), 0), "
    "COALESCE(SUM(completion_tokens), 0), "
    "COALESCE(SUM(price_nano_usd), 0), "
    "COALESCE(SUM(compute_cost_nano_usd), 0)"
)


def record_values(record: UsageRecord) -> tuple[Any, ...]:
    """A record as the column values of an INSERT, in table order."""
    return (
        record.request_id, record.key_id, record.tenant, record.model, record.replica, record.chip,
        record.kind, int(record.stream), int(record.prompt_tokens), int(record.cached_tokens),
        int(record.completion_tokens), int(record.price_nano_usd), int(record.compute_cost_nano_usd),
        record.status, record.error_code, int(record.estimated), float(record.started_at),
        float(record.finished_at), None if record.ttft_ms is None else float(record.ttft_ms),
        float(record.latency_ms), record.day,
    )


def record_from_row(row: Sequence[Any]) -> UsageRecord:
    """Inverse of :func:`record_values` (the trailing ``day`` column is derived, so ignored)."""
    return UsageRecord(
        request_id=row[0], key_id=row[1], tenant=row[2], model=row[3], replica=row[4], chip=row[5],
        kind=row[6], stream=bool(row[7]), prompt_tokens=int(row[8]), cached_tokens=int(row[9]),
        completion_tokens=int(row[10]), price_nano_usd=int(row[11]), compute_cost_nano_usd=int(row[12]),
        status=row[13], error_code=row[14], estimated=bool(row[15]), started_at=float(row[16]),
        finished_at=float(row[17]), ttft_ms=None if row[18] is None else float(row[18]),
        latency_ms=float(row[19]),
    )


def _where(query: UsageQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("tenant", query.tenant), ("key_id", query.key_id), ("model", query.model), ("chip", query.chip)
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    since, until = to_unix(query.since), to_unix(query.until)
    if since is not None:
        clauses.append("started_at >= ?")
        args.append(since)
    if until is not None:
        clauses.append("started_at < ?")
        args.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def usage_sql(query: UsageQuery, *, select: str | None = None, order: str | None = None) -> tuple[str, list[Any]]:
    """The aggregate query for a UsageQuery (or, with ``select``, a plain row query)."""
    where, args = _where(query)
    columns = [GROUP_COLUMNS[name] for name in query.group_by]
    if select is None:
        select = "SELECT " + ", ".join([*columns, _SUMS])
    sql = f"{select} FROM usage_records{where}"
    if columns and order is None:
        sql += " GROUP BY " + ", ".join(columns)
    if order is not None:
        sql += f" ORDER BY {order}"
    return sql, args


def usage_rows(query: UsageQuery, rows: list[tuple[Any, ...]]) -> list[UsageRow]:
    """UsageRows from aggregate results, sorted by group values with None first."""
    width = len(query.group_by)
    result = []
    for row in rows:
        sums = [int(v) for v in row[width:]]
        if not query.group_by and sums[0] == 0:
            continue  # an empty ledger has no rows to report, not one row of zeros
        result.append(
            UsageRow(
                group=dict(zip(query.group_by, row[:width], strict=True)),
                requests=sums[0], errors=sums[1], partials=sums[2], estimated=sums[3],
                prompt_tokens=sums[4], cached_tokens=sums[5], completion_tokens=sums[6],
                price_nano_usd=sums[7], compute_cost_nano_usd=sums[8],
            )
        )
    result.sort(key=lambda r: tuple((v is not None, v or "") for v in r.group.values()))
    return result


def spend_sql(
    *, key_id: str | None, tenant: str | None, since: float | None, until: float | None
) -> tuple[str, list[Any]]:
    """Sum of charges for a key or tenant in [since, until): seeds budget counters."""
    if (key_id is None) == (tenant is None):
        raise ValueError("give exactly one of key_id or tenant")
    where, args = _where(UsageQuery(tenant=tenant, key_id=key_id, since=since, until=until))
    return f"SELECT COALESCE(SUM(price_nano_usd), 0) FROM usage_records{where}", args
