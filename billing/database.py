"""Opening the billing database: keys, tenants and the ledger share one store.

``sqlite:///relative/path.db`` (three slashes: relative to the working directory),
``sqlite:////abs/path.db``, or ``postgresql://user@host:port/db[?schema=NAME]``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from billing.checkpoints import StreamCheckpoints
from billing.keys import KeyStore
from billing.ledger import GroupCommitLedger, SqlStore
from billing.records import UsageRecord
from billing.replica_hours import ReplicaHours
from billing.response_store import ResponseStore
from billing.revocations import feed_for
from billing.tenants import TenantStore

log = logging.getLogger(__name__)


class BillingDatabase:
    """The billing database: ``keys``, ``tenants``, ``ledger`` and stored ``responses`` over one ``store``."""

    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Callable[[], float] = time.time,
        spill_path: Path | None = None,
        ledger_options: dict[str, Any] | None = None,
        checkpoint_options: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.keys = KeyStore(store, clock=clock, feed=feed_for(store))
        self.tenants = TenantStore(store, clock=clock)
        self.ledger = GroupCommitLedger(store, **(ledger_options or {}))
        self.replica_hours = ReplicaHours(store)
        self.checkpoints = StreamCheckpoints(store, clock=clock, **(checkpoint_options or {}))
        self.responses = ResponseStore(store, clock=clock)
        #: where records that could not be written at close go, to be replayed at next open
        self.spill_path = spill_path

    @property
    def dialect(self) -> str:
        return self.store.dialect

    async def replay_spill(self) -> int:
        """Write records spilled by an earlier close; returns how many (duplicates are ignored)."""
        if self.spill_path is None or not self.spill_path.exists():
            return 0
        records = [
            UsageRecord(**orjson.loads(line)) for line in self.spill_path.read_bytes().splitlines() if line.strip()
        ]
        for record in records:
            self.ledger.submit(record)
        await self.ledger.flush()
        self.spill_path.unlink()
        log.warning("replayed %d spilled usage records from %s", len(records), self.spill_path)
        return len(records)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Flush the ledger (spilling what cannot be written in ``timeout_s``) and close the store."""
        await self.keys.close()
        unwritten = await self.ledger.close(timeout_s)
        if unwritten:
            if self.spill_path is not None:
                with self.spill_path.open("ab") as spill:
                    for record in unwritten:
                        spill.write(orjson.dumps(dataclasses.asdict(record)) + b"\n")
                log.error("%d usage records spilled to %s", len(unwritten), self.spill_path)
            else:
                log.error("%d usage records could not be written and are lost", len(unwritten))
        await self.store.close()


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL."""
    path = url.removeprefix("sqlite://")
    if not path.startswith("/") or path in ("/", "/:memory:"):
        raise ValueError(f"ledger URL {url!r}: expected sqlite:///path/to/file.db")
    # sqlite:///rel.db -> "/rel.db" is relative; sqlite:////abs.db -> "//abs.db" is absolute
    return Path(path[1:])


async def open_database(
    url: str,
    *,
    clock: Callable[[], float] = time.time,
    spill_path: str | Path | None = None,
    ledger_options: dict[str, Any] | None = None,
    checkpoint_options: dict[str, Any] | None = None,
) -> BillingDatabase:
    """Open (create, migrate) the billing database at ``url`` and replay any spilled records.

    ``ledger_options`` go to GroupCommitLedger (max_batch, linger_s, append_timeout_s,
    on_flush). SQLite spills to ``<file>.unwritten.jsonl`` unless told otherwise.
    """
    if url.startswith("sqlite:"):
        from billing.store_sqlite import SqliteStore

        path = sqlite_path(url)
        store: SqlStore = await SqliteStore.open(path)
        if spill_path is None:
            spill_path = path.with_name(path.name + ".unwritten.jsonl")
    elif url.startswith(("postgresql:", "postgres:")):
        from billing.store_postgres import PostgresStore

        store = await PostgresStore.open(url)
    else:
        raise ValueError(f"unsupported ledger URL {url!r}: use sqlite:///path.db or postgresql://...")
    db = BillingDatabase(
        store, clock=clock, spill_path=None if spill_path is None else Path(spill_path),
        ledger_options=ledger_options, checkpoint_options=checkpoint_options,
    )
    try:
        await db.replay_spill()
    except BaseException:
        await db.close()
        raise
    return db
