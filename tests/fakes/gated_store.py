"""A real SqlStore behind a gate: the database can be made to go down, or to hang mid-commit.

Other statements pass straight through; ledger batch inserts (``insert_ignoring_duplicates``)
fail while ``down``, and while ``held`` they wait (a transaction in flight) until
``release()``, then reach the real database. After ``hold_reads()``, ``fetchrow``
reads, then holds the answer (a key lookup in flight) until ``release_reads()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


class GatedStore:
    """Wraps a SqliteStore or PostgresStore; see the module docstring."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.dialect = inner.dialect
        self.down = False
        self._gate = asyncio.Event()
        self._gate.set()
        self.waiting = asyncio.Event()  # set while a batch is held in flight
        self.attempts = 0
        self._reads = asyncio.Event()
        self._reads.set()
        self.reading = asyncio.Event()  # set while a read is held

    def hold_reads(self) -> None:
        self._reads.clear()

    def release_reads(self) -> None:
        self._reads.set()

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        row = await self._inner.fetchrow(sql, *args)
        if not self._reads.is_set():  # the answer is read, still on its way back
            self.reading.set()
            await self._reads.wait()
        return row

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def insert_ignoring_duplicates(
        self, table: str, columns: Sequence[tuple[str, str]], key: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        self.attempts += 1
        if not self._gate.is_set():
            self.waiting.set()
            await self._gate.wait()
            self.waiting.clear()
        if self.down:
            raise ConnectionError("database unreachable")
        await self._inner.insert_ignoring_duplicates(table, columns, key, rows)

    def rejects(self, exc: Exception) -> bool:
        return self._inner.rejects(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
