"""SQLite access for the billing database: one writer connection, one reader, WAL mode.

Durability is ``synchronous=FULL``: a committed ledger batch survives power loss.
Group commit is what makes that affordable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from billing.schema import migrations

_BUSY_TIMEOUT_MS = 10_000


class SqliteStore:
    """SQL on one SQLite file; ``?`` placeholders. Writes are serialized by a lock."""

    dialect = "sqlite"

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> SqliteStore:
        """Open (creating directories and file) and run migrations."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await writer.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=FULL")
            reader = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            await writer.close()
            raise
        await reader.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        await reader.execute("PRAGMA query_only=ON")
        store = cls(path, writer, reader)
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """All rows of a read query (runs on the reader connection)."""
        async with self._reader.execute(sql, args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        """The first row of a read query, or None."""
        async with self._reader.execute(sql, args) as cursor:
            row = await cursor.fetchone()
        return None if row is None else tuple(row)

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one write statement in its own transaction; returns the rows it changed."""
        async with self._write_lock:
            cursor = await self._writer.execute(sql, args)
            count = cursor.rowcount
            await cursor.close()
            return count

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement for every row, all in one transaction."""
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                await self._writer.executemany(sql, rows)
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise

    async def insert_ignoring_duplicates(
        self, table: str, columns: Sequence[tuple[str, str]], key: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows in one transaction; ``ON CONFLICT (key) DO NOTHING`` skips replays."""
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" * len(columns))
        await self.execute_many(f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING", rows)

    def rejects(self, exc: Exception) -> bool:
        """Constraint violations and values SQLite cannot bind; a locked or failing disk is retried."""
        return isinstance(exc, (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, TypeError, ValueError))

    async def migrate(self) -> int:
        """Bring the schema to the latest version; returns it. Safe with concurrent openers."""
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                await self._writer.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)"
                )
                async with self._writer.execute("SELECT MAX(version) FROM schema_version") as cursor:
                    current = (await cursor.fetchone())[0] or 0
                for version, statements in migrations(self.dialect):
                    if version <= current:
                        continue
                    for statement in statements:
                        await self._writer.execute(statement)
                    await self._writer.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, strftime('%s','now'))",
                        (version,),
                    )
                    current = version
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
        return current

    async def close(self) -> None:
        """Close both connections."""
        await self._reader.close()
        await self._writer.close()
