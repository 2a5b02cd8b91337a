"""Revocations reach every process's key cache within a second, from the database itself.

The database is the one place every revocation is written (by any gateway's admin API or
by ``maas keys revoke``, which opens only the database), so the news comes from there:

- PostgreSQL: the revoking statement ``NOTIFY``s on commit; every process ``LISTEN``s on a
  connection of its own, and on (re)connecting first evicts whatever was revoked in the
  last seconds (so the moments before the LISTEN are covered). After a lost connection
  the whole cache is dropped: a revocation may have gone by while nobody listened.
- SQLite (one machine): each process asks for keys revoked since it last looked (with a
  few seconds' overlap), every ``interval_s``: a scan of the small api_keys table.

A feed reports itself live or not; while it is not, the key cache keeps entries only
briefly (``KeyStore.fallback_ttl_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: how far back a feed looks again: revocations written by another process with a slightly older clock,
#: and those made while a feed was starting
_OVERLAP_S = 5.0


class RevocationSink(Protocol):
    """What a feed tells: a key id was revoked; whether the feed is live (a gap drops the cache)."""

    def evict(self, key_id: str) -> None: ...
    def feed_live(self, live: bool) -> None: ...


def channel_for(schema: str | None) -> str:
    """The NOTIFY channel of one ledger (schemas share a database, so the channel names the schema)."""
    return "maas_revoked_" + hashlib.sha256((schema or "public").encode()).hexdigest()[:16]


class PollingFeed:
    """Asks an SQL store for keys revoked since the last look (SQLite: every process on one machine)."""

    def __init__(self, store: Any, *, interval_s: float = 0.2, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.interval_s = interval_s
        self._clock = clock

    async def run(self, sink: RevocationSink) -> None:
        since = self._clock() - _OVERLAP_S
        seen: dict[str, float] = {}
        live = False
        while True:
            try:
                rows = await self._store.fetch(
                    "SELECT id, revoked_at FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at >= ?", since
                )
            except Exception as exc:  # noqa: BLE001 - a failed poll is a gap, retried
                if live:
                    log.warning("revocation poll failed (%s); key cache on a short TTL until it works", exc)
                live = False
                sink.feed_live(False)
            else:
                for key_id, revoked_at in rows:
                    if key_id not in seen:
                        seen[key_id] = float(revoked_at)
                        sink.evict(key_id)
                if not live:
                    live = True
                    sink.feed_live(True)
                newest = max(seen.values(), default=since + _OVERLAP_S)
                since = max(since, newest - _OVERLAP_S)
                seen = {k: v for k, v in seen.items() if v >= since}
            await asyncio.sleep(self.interval_s)


class PostgresNotifyFeed:
    """LISTENs for revocations on a dedicated connection; reconnects with backoff."""

    def __init__(
        self, dsn: str, schema: str | None, *, reconnect_max_s: float = 5.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self.channel = channel_for(schema)
        self.reconnect_max_s = reconnect_max_s
        self._clock = clock

    async def run(self, sink: RevocationSink) -> None:
        import asyncpg

        delay = 0.1
        while True:
            conn = None
            try:
                settings = {"search_path": self._schema} if self._schema else {}
                conn = await asyncpg.connect(self._dsn, server_settings=settings)
                lost = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(lambda _c: lost.done() or lost.set_result(None))
                await conn.add_listener(self.channel, lambda _c, _pid, _ch, key_id: sink.evict(key_id))
                recent = await conn.fetch(
                    "SELECT id FROM api_keys WHERE revoked_at >= $1", self._clock() - _OVERLAP_S
                )
                for row in recent:
                    sink.evict(row[0])
                sink.feed_live(True)  # live again after a gap: drops what was cached while nobody listened
                delay = 0.1
                await lost
                log.warning("revocation listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("revocation listener cannot connect (%s); retrying in %.1fs", exc, delay)
            finally:
                sink.feed_live(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=1))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)


def feed_for(store: Any) -> PollingFeed | PostgresNotifyFeed | None:
    """The revocation feed of a billing store, by its dialect."""
    if store.dialect == "postgresql" and getattr(store, "dsn", None):
        return PostgresNotifyFeed(store.dsn, store.schema)
    if store.dialect == "sqlite":
        return PollingFeed(store)
    return None
