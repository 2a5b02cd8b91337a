"""The append-only usage ledger, with group commit.

``append`` queues a record and returns once it is durable. One background flusher
writes whatever is queued in one transaction (up to ``max_batch`` rows), so many
concurrent requests share one commit instead of paying one each. Writes are
``INSERT ... ON CONFLICT (request_id) DO NOTHING``: a replayed record never counts twice.
If the database is down the flusher keeps retrying; nothing queued is dropped.

An answer withheld because its record was not durable in time must never be charged
(``append(..., void_on_timeout=True)``): a record still queued is replaced by its unbilled
form before it is written; one already inside a transaction that then commits is
cancelled by an appended reversal row. Either way the ledger stays append-only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from billing.errors import LedgerUnavailable
from billing.records import UsageQuery, UsageRecord, UsageRow, reversal, withheld
from billing.usage_sql import record_from_row, record_values, spend_sql, usage_rows, usage_sql

log = logging.getLogger(__name__)

#: the usage_records columns in table order, with their PostgreSQL types
USAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "text"), ("key_id", "text"), ("tenant", "text"), ("model", "text"), ("replica", "text"),
    ("chip", "text"), ("kind", "text"), ("stream", "int4"), ("prompt_tokens", "int8"),
    ("cached_tokens", "int8"), ("completion_tokens", "int8"), ("price_nano_usd", "int8"),
    ("compute_cost_nano_usd", "int8"), ("status", "text"), ("error_code", "text"), ("estimated", "int4"),
    ("started_at", "float8"), ("finished_at", "float8"), ("ttft_ms", "float8"), ("latency_ms", "float8"),
    ("day", "text"),
)
_COLUMNS = ", ".join(name for name, _ in USAGE_COLUMNS)


class SqlStore(Protocol):
    """What the ledger and key store need from a database (``?`` placeholders)."""

    dialect: str

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None: ...
    async def execute(self, sql: str, *args: Any) -> int: ...
    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def insert_ignoring_duplicates(
        self, table: str, columns: Sequence[tuple[str, str]], key: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows in one transaction, skipping any whose ``key`` already exists."""

    def rejects(self, exc: Exception) -> bool:
        """Whether an error is the database refusing the rows themselves (retrying cannot help)."""
    async def close(self) -> None: ...


@runtime_checkable
class Ledger(Protocol):
    """Where usage records go; the invoice is computed from it."""

    queue_depth: int
    last_flush_seconds: float

    async def append(self, record: UsageRecord, *, void_on_timeout: bool = False) -> None:
        """Return once the record is durable (idempotent by request_id).

        With ``void_on_timeout``, LedgerUnavailable means the record will never count as charged.
        """

    def submit(self, record: UsageRecord) -> None:
        """Queue a record without waiting (safe from a cancelled task)."""

    async def flush(self, timeout_s: float | None = None) -> None:
        """Return once everything queued so far is durable."""

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """Sums of the records matching the query, one row per group."""

    async def spend_nano(
        self, *, key_id: str | None = None, tenant: str | None = None, since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Total charged (nano-USD) to a key or tenant in a time range."""

    async def close(self) -> None:
        """Flush and stop the flusher."""


@dataclass(slots=True)
class LedgerStats:
    """Counters for metrics and for tests that check batching without timing."""

    appended: int = 0
    transactions: int = 0
    rows_written: int = 0
    failed_attempts: int = 0
    rejected: int = 0


class GroupCommitLedger:
    """A Ledger over any SqlStore; batching and retry logic shared by SQLite and PostgreSQL."""

    def __init__(
        self,
        store: SqlStore,
        *,
        max_batch: int = 512,
        linger_s: float = 0.0,
        append_timeout_s: float = 30.0,
        retry_max_s: float = 2.0,
        on_flush: Callable[[int, float], None] | None = None,
    ) -> None:
        self._store = store
        self.max_batch = max_batch
        # linger_s > 0 waits that long after the first queued row for more to join the
        # batch; 0 relies on rows piling up while the previous commit runs.
        self.linger_s = linger_s
        self.append_timeout_s = append_timeout_s
        self.retry_max_s = retry_max_s
        self.on_flush = on_flush
        self.stats = LedgerStats()
        self.last_flush_seconds = 0.0
        self._pending: list[tuple[UsageRecord, asyncio.Future[None]]] = []
        self._inflight: list[tuple[UsageRecord, asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        #: request ids voided while their batch was being written
        self._voided: set[str] = set()

    @property
    def queue_depth(self) -> int:
        """Records accepted but not yet durable."""
        return len(self._pending) + len(self._inflight)

    def _enqueue(self, record: UsageRecord) -> asyncio.Future[None]:
        if self._closing:
            raise LedgerUnavailable("ledger is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((record, future))
        self.stats.appended += 1
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._run(), name="ledger-flusher")
        return future

    async def append(self, record: UsageRecord, *, void_on_timeout: bool = False) -> None:
        """Queue the record and wait until it is committed.

        Raises LedgerUnavailable after ``append_timeout_s``. By default the record stays
        queued and is still written when the database comes back. With ``void_on_timeout``
        (the caller withholds the answer) it is voided instead: it will never count as
        charged. A record committed just as the time ran out is simply durable: no error.
        Cancelling the caller withdraws nothing.
        """
        future = self._enqueue(record)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.append_timeout_s)
        except TimeoutError:
            if not void_on_timeout:
                raise LedgerUnavailable(
                    f"usage record {record.request_id} not durable after {self.append_timeout_s}s; still queued"
                ) from None
            if future.done() and not future.cancelled() and future.exception() is None:
                return  # committed in the same instant: durable, so the answer may go out
            future.add_done_callback(_consume_exception)
            self._void(record.request_id)
            raise LedgerUnavailable(
                f"usage record {record.request_id} not durable after {self.append_timeout_s}s; voided, never charged"
            ) from None

    def _void(self, request_id: str) -> None:
        for i, (queued, future) in enumerate(self._pending):
            if queued.request_id == request_id:
                self._pending[i] = (withheld(queued), future)
                return
        if any(queued.request_id == request_id for queued, _ in self._inflight):
            # its transaction may commit or fail: swapped before a retry, reversed after a commit
            self._voided.add(request_id)

    def _swap_voided(self, batch: list[tuple[UsageRecord, asyncio.Future[None]]]) -> None:
        for i, (queued, future) in enumerate(batch):
            if queued.request_id in self._voided:
                self._voided.discard(queued.request_id)
                batch[i] = (withheld(queued), future)

    def _reverse_voided(self, batch: list[tuple[UsageRecord, asyncio.Future[None]]]) -> None:
        for written, _ in batch:
            if written.request_id in self._voided:
                self._voided.discard(written.request_id)
                log.warning("usage record %s was committed after its answer was withheld: reversed", written.request_id)
                self.submit(reversal(written))

    def submit(self, record: UsageRecord) -> None:
        """Queue the record and return at once."""
        future = self._enqueue(record)
        future.add_done_callback(_consume_exception)

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every record queued before this call to be committed.

        With ``timeout_s``, raise LedgerUnavailable when that takes longer (records stay queued).
        """
        waiting = [f for _, f in self._pending] + [f for _, f in self._inflight]
        if not waiting:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(f) for f in waiting), return_exceptions=True), timeout_s
            )
        except TimeoutError:
            raise LedgerUnavailable(f"{len(waiting)} usage records not durable after {timeout_s}s") from None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.linger_s > 0 and len(self._pending) < self.max_batch and not self._closing:
                await asyncio.sleep(self.linger_s)
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._inflight = batch
            await self._write(batch)
            self._inflight = []

    async def _write(self, batch: list[tuple[UsageRecord, asyncio.Future[None]]]) -> None:
        delay = 0.05
        while True:
            self._swap_voided(batch)
            started = time.perf_counter()
            try:
                rows = [record_values(record) for record, _ in batch]
                await self._store.insert_ignoring_duplicates("usage_records", USAGE_COLUMNS, "request_id", rows)
            except Exception as exc:
                self.stats.failed_attempts += 1
                if self._store.rejects(exc):
                    await self._isolate(batch, exc)
                    return
                log.warning("ledger write of %d records failed (%s); retrying in %.2fs", len(batch), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            elapsed = time.perf_counter() - started
            self.stats.transactions += 1
            self.stats.rows_written += len(batch)
            self.last_flush_seconds = elapsed
            if self.on_flush is not None:
                self.on_flush(len(batch), elapsed)
            self._reverse_voided(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            return

    async def _isolate(self, batch: list[tuple[UsageRecord, asyncio.Future[None]]], exc: Exception) -> None:
        # The database refused the content of some row: write the rows one by one so
        # a single bad record cannot hold back everyone else's.
        if len(batch) > 1:
            for item in batch:
                await self._write([item])
            return
        record, future = batch[0]
        self.stats.rejected += 1
        log.error("ledger refused usage record %s (%s): %r", record.request_id, exc, record)
        if not future.done():
            future.set_exception(LedgerUnavailable(f"usage record {record.request_id} refused by the database: {exc}"))

    @staticmethod
    def _fail(batch: list[tuple[UsageRecord, asyncio.Future[None]]], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def close(self, timeout_s: float = 10.0) -> list[UsageRecord]:
        """Write what is queued (up to ``timeout_s``), stop the flusher.

        Returns the records that could not be written (the caller may spill them).
        """
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._flusher is not None and not self._flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), timeout_s)
            except TimeoutError:
                self._flusher.cancel()
                try:
                    await self._flusher
                except (asyncio.CancelledError, Exception):
                    pass
        left = [*self._inflight, *self._pending]
        self._inflight, self._pending = [], []
        unwritten = [record for record, future in left if not future.done()]
        self._fail(left, LedgerUnavailable("ledger closed before the record was written"))
        return unwritten

    # -- reads ---------------------------------------------------------------

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """Sums per group, sorted by group values (None first): identical on both databases."""
        sql, args = usage_sql(query)
        return usage_rows(query, await self._store.fetch(sql, *args))

    async def count(self, query: UsageQuery | None = None) -> int:
        """How many records match (every admitted request has one)."""
        rows = await self.usage(UsageQuery() if query is None else _ungrouped(query))
        return rows[0].requests if rows else 0

    async def get(self, request_id: str) -> UsageRecord | None:
        """The record of one request, or None."""
        row = await self._store.fetchrow(f"SELECT {_COLUMNS} FROM usage_records WHERE request_id = ?", request_id)
        return None if row is None else record_from_row(row)

    async def records(self, query: UsageQuery, *, limit: int = 1000) -> list[UsageRecord]:
        """Matching records, oldest first (for exports and audits)."""
        sql, args = usage_sql(_ungrouped(query), select=f"SELECT {_COLUMNS}", order="started_at, request_id")
        rows = await self._store.fetch(f"{sql} LIMIT ?", *args, limit)
        return [record_from_row(row) for row in rows]

    async def spend_nano(
        self, *, key_id: str | None = None, tenant: str | None = None, since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Total charged to a key or tenant with started_at in [since, until)."""
        sql, args = spend_sql(key_id=key_id, tenant=tenant, since=since, until=until)
        row = await self._store.fetchrow(sql, *args)
        return int(row[0]) if row and row[0] is not None else 0


def _ungrouped(query: UsageQuery) -> UsageQuery:
    return UsageQuery(
        tenant=query.tenant, key_id=query.key_id, model=query.model, chip=query.chip,
        since=query.since, until=query.until,
    )


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("queued usage record was not written: %s", future.exception())
