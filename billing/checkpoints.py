"""Stream checkpoints: a gateway killed mid-stream still bills what its streams delivered.

A stream's final usage record is written when it ends; a gateway that dies
(``kill -9``, a lost machine) never writes it. So while a stream runs, the gateway
keeps its partial record (delivered tokens so far, ``partial``) in the database,
rewritten about once a second (coalesced: one row per stream, one transaction per
interval), and beats a heartbeat. Any gateway, at start and every few seconds,
turns the checkpoints of gateways that stopped beating into usage records
(``INSERT ... ON CONFLICT DO NOTHING``: a stream whose final record did land is
never billed twice) and deletes them. A finished stream's checkpoint is deleted
once its final record is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

import orjson

from billing.ledger import USAGE_COLUMNS, SqlStore
from billing.records import UsageRecord
from billing.usage_sql import record_from_row, record_values

log = logging.getLogger(__name__)


class StreamCheckpoints:
    """Checkpoints of this gateway's streams, and recovery of dead gateways' ones."""

    def __init__(
        self,
        store: SqlStore,
        *,
        interval_s: float = 1.0,
        dead_after_s: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.interval_s = interval_s
        self.dead_after_s = dead_after_s
        self._clock = clock
        #: this process, unique across restarts and machines
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pending: dict[str, UsageRecord] = {}
        self._finished: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.recovered = 0

    def put(self, record: UsageRecord) -> None:
        """The latest partial record of a stream in flight (written within ``interval_s``)."""
        if record.request_id not in self._finished:
            self._pending[record.request_id] = record

    def done(self, request_id: str) -> None:
        """The stream's final record is durable: its checkpoint goes."""
        self._pending.pop(request_id, None)
        self._finished.add(request_id)

    async def start(self) -> None:
        """Beat, recover what dead gateways left, and keep writing checkpoints."""
        await self._beat()
        await self.recover()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-checkpoints")

    async def _run(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.interval_s)  # the write interval itself
            try:
                await self.write()
                beats += 1
                if beats % 5 == 0:
                    await self._beat()
                    await self.recover()
            except Exception:  # noqa: BLE001 - a failed round is retried at the next one
                log.exception("stream checkpoints: a round failed")

    async def write(self) -> None:
        """Write pending checkpoints and delete finished ones, in one transaction each."""
        pending, self._pending = self._pending, {}
        finished, self._finished = self._finished, set()
        if pending:
            now = self._clock()
            rows = [(r.request_id, self.owner, orjson.dumps(record_values(r)).decode(), now) for r in pending.values()]
            await self._store.execute_many(
                "INSERT INTO stream_checkpoints (request_id, owner, record, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (request_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
                rows,
            )
        if finished:
            await self._store.execute_many("DELETE FROM stream_checkpoints WHERE request_id = ?",
                                           [(request_id,) for request_id in finished])

    async def _beat(self) -> None:
        await self._store.execute(
            "INSERT INTO gateway_heartbeats (owner, seen_at) VALUES (?, ?) "
            "ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at",
            self.owner, self._clock(),
        )

    async def recover(self) -> int:
        """Bill the streams of gateways that stopped beating, as ``partial``; returns how many rows."""
        cutoff = self._clock() - self.dead_after_s
        rows = await self._store.fetch(
            "SELECT c.request_id, c.owner, c.record FROM stream_checkpoints c "
            "LEFT JOIN gateway_heartbeats h ON h.owner = c.owner "
            "WHERE c.owner <> ? AND (h.seen_at IS NULL OR h.seen_at < ?)",
            self.owner, cutoff,
        )
        if not rows:
            return 0
        records = [record_from_row(orjson.loads(row[2])) for row in rows]
        await self._store.insert_ignoring_duplicates(
            "usage_records", USAGE_COLUMNS, "request_id", [record_values(r) for r in records]
        )
        await self._store.execute_many("DELETE FROM stream_checkpoints WHERE request_id = ?",
                                       [(row[0],) for row in rows])
        dead = sorted({row[1] for row in rows})
        await self._store.execute_many("DELETE FROM gateway_heartbeats WHERE owner = ?", [(o,) for o in dead])
        self.recovered += len(records)
        log.warning("billed %d streams cut by the death of gateway(s) %s, as partial", len(records), ", ".join(dead))
        return len(records)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.write()
            await self._store.execute("DELETE FROM gateway_heartbeats WHERE owner = ?", self.owner)
