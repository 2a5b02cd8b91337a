"""Stored Responses (``POST /v1/responses`` with ``store``), per tenant, in the billing database.

A response is visible to its tenant only: every read and delete is keyed by
(id, tenant), so another tenant's id is indistinguishable from an unknown one.
Each row keeps the response object, the request's input items, and the
conversation before them (the previous response's context, input and output),
so continuing from ``previous_response_id`` is one read, and deleting an earlier
response does not break the conversations that grew from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from billing.ledger import SqlStore

_COLUMNS = "id, tenant, key_id, model, created_at, response, input_items, context_items"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A stored response: the object as answered, and the conversation it continued."""

    id: str
    tenant: str
    key_id: str | None
    model: str
    created_at: float
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context_items: list[dict[str, Any]]

    def conversation(self) -> list[dict[str, Any]]:
        """Every item a continuation starts from: the context, this input, this output."""
        return [*self.context_items, *self.input_items, *self.response.get("output", [])]


class ResponseStore:
    """Save, read and delete stored responses of a tenant."""

    def __init__(self, store: SqlStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def save(
        self,
        tenant: str,
        key_id: str | None,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        context_items: list[dict[str, Any]],
    ) -> None:
        await self._store.execute(
            f"INSERT INTO stored_responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            # stored at: the response's own created_at has whole seconds only, too coarse to list by
            response["id"], tenant, key_id, response.get("model", ""), self._clock(),
            orjson.dumps(response).decode(), orjson.dumps(input_items).decode(), orjson.dumps(context_items).decode(),
        )

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        """The tenant's response, None when unknown or another tenant's."""
        row = await self._store.fetchrow(
            f"SELECT {_COLUMNS} FROM stored_responses WHERE id = ? AND tenant = ?", response_id, tenant
        )
        if row is None:
            return None
        return StoredResponse(
            id=row[0], tenant=row[1], key_id=row[2], model=row[3], created_at=float(row[4]),
            response=orjson.loads(row[5]), input_items=orjson.loads(row[6]), context_items=orjson.loads(row[7]),
        )

    async def page(
        self, tenant: str, *, limit: int, after: str | None = None, ascending: bool = False
    ) -> tuple[list[dict[str, Any]], bool] | None:
        """Up to ``limit`` of the tenant's response objects by creation (newest first unless
        ``ascending``), those after the response ``after``, and whether more follow; None when
        ``after`` is not one of the tenant's responses. Only the objects are read: a row's
        conversation (input and context items) can be far larger and a list does not show it."""
        since: tuple[float, str] | None = None
        if after is not None:
            row = await self._store.fetchrow(
                "SELECT created_at, id FROM stored_responses WHERE id = ? AND tenant = ?", after, tenant
            )
            if row is None:
                return None
            since = (float(row[0]), row[1])
        beyond, order = (">", "ASC") if ascending else ("<", "DESC")
        where, args = "tenant = ?", [tenant]
        if since is not None:
            where += f" AND (created_at {beyond} ? OR (created_at = ? AND id {beyond} ?))"
            args += [since[0], since[0], since[1]]
        rows = await self._store.fetch(
            f"SELECT response FROM stored_responses WHERE {where} "
            f"ORDER BY created_at {order}, id {order} LIMIT ?", *args, limit + 1,
        )
        return [orjson.loads(row[0]) for row in rows[:limit]], len(rows) > limit

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Delete the tenant's response; False when there was none."""
        changed = await self._store.execute(
            "DELETE FROM stored_responses WHERE id = ? AND tenant = ?", response_id, tenant
        )
        return changed > 0

