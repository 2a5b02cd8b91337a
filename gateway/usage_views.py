"""Usage reports over HTTP: filters from the query string, JSON or CSV out."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from billing.capacity_report import capacity_lines
from billing.records import UsageQuery
from gateway import errors
from gateway.edge import Reply

if TYPE_CHECKING:
    from gateway.context import Gateway

_FILTERS = ("key", "model", "chip", "from", "to", "group_by", "format", "tenant")
#: what the operator pays and earns: never shown to tenants, who see only what they are charged
OPERATOR_ONLY = ("compute_cost_usd", "margin_usd")


async def usage_reply(gw: Gateway, params: dict[str, str], *, tenant: str | None) -> Reply:
    """``tenant`` set: the caller's own usage (their tenant only, by model and day)."""
    unknown = sorted(set(params) - set(_FILTERS))
    if unknown:
        raise errors.bad_request(f"Unknown query parameter '{unknown[0]}'.", param=unknown[0])
    default_group = "model,day" if tenant is not None else "model"
    group_by = tuple(g for g in (params.get("group_by") or default_group).split(",") if g)
    try:
        query = UsageQuery(
            tenant=tenant if tenant is not None else params.get("tenant"),
            key_id=params.get("key"),
            model=params.get("model"),
            chip=params.get("chip"),
            since=params.get("from"),
            until=params.get("to"),
            group_by=group_by,  # type: ignore[arg-type]
        )
        rows = await gw.db.ledger.usage(query)
    except ValueError as exc:
        raise errors.bad_request(str(exc), param="group_by" if "group" in str(exc) else "from") from None
    data = [row.to_dict() for row in rows]
    if tenant is not None:
        data = [{k: v for k, v in row.items() if k not in OPERATOR_ONLY} for row in data]
    if params.get("format") == "csv":
        return Reply(raw=to_csv(data, group_by).encode(), content_type="text/csv; charset=utf-8")
    if params.get("format") not in (None, "json"):
        raise errors.bad_request("format must be 'json' or 'csv'.", param="format")
    body: dict[str, object] = {"object": "list", "group_by": list(group_by), "data": data}
    if tenant is None and params.get("tenant") is None and params.get("key") is None:
        # the operator's view of the whole service: what the replicas cost, idle capacity included
        by = "model" if group_by and group_by[0] == "model" else "chip"
        lines = await capacity_lines(
            gw.db.ledger, gw.db.replica_hours, by=by, since=query.since, until=query.until,
            model=query.model, chip=query.chip,
        )
        body["capacity"] = [line.to_dict(by) for line in lines]
    return Reply(body)


def to_csv(rows: list[dict], group_by: tuple[str, ...]) -> str:
    out = io.StringIO()
    columns = [*group_by] + [c for c in (rows[0] if rows else {}) if c not in group_by]
    writer = csv.DictWriter(out, fieldnames=columns or list(group_by), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
