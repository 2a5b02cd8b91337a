"""SQLite access for the billing database: one writer connection, one reader, WAL mode.

Durability is ``synchronous=FULL``: a committed ledger batch survives power loss.
Group commit is what makes that affordable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from billing.schema import migrations

_BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


class SqliteStore:
    """SQL on one SQLite file; ``?`` placeholders.

    Writes run on one dedicated thread with its own connection, each call in a single
    hop (a group commit's BEGIN, INSERTs and COMMIT together): the writer thread was the
    gateway's biggest CPU cost per request when every statement was a round trip of its
    own. Reads go through an aiosqlite connection.
    """

    dialect = "sqlite"

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    @classmethod
    async def open(cls, path: str | Path) -> SqliteStore:
        """Open (creating directories and file) and run migrations."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute("PRAGMA synchronous=FULL")
            reader = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            writer.close()
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

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, self._writer)

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
        return await self._write(lambda conn: conn.execute(sql, args).rowcount)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement for every row, all in one transaction."""
        await self._write(lambda conn: _transaction(conn, lambda: conn.executemany(sql, rows)))

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
        return await self._write(lambda conn: _transaction(conn, lambda: _migrate(conn, self.dialect)))

    async def close(self) -> None:
        """Close both connections."""
        await self._reader.close()
        await self._write(lambda conn: conn.close())
        self._thread.shutdown(wait=True)


def _transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _migrate(conn: sqlite3.Connection, dialect: str) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
    current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    for version, statements in migrations(dialect):
        if version <= current:
            continue
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, strftime('%s','now'))", (version,))
        current = version
    return current
