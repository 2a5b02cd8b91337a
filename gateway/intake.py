"""Bounding what a request costs before it is admitted: reading, parsing and tokenizing large bodies.

A body of a few megabytes costs tens of megabytes once parsed and up to seconds of
CPU to tokenize, all before rate limits and budgets can refuse it. Large bodies
(over ``threshold_bytes``, or of unknown length) therefore pass one gate: at most
``per_key`` of one key's and ``total`` of all keys' are read, parsed and planned at
a time; the others wait (unread: the server holds only their first few kilobytes).
Small requests — nearly all of them — never wait. One key sending many large
bodies thus queues behind itself, not in front of other tenants; and a key may send
at most ``bytes_per_s`` of large bodies (a token bucket, bursts up to one maximal
body): beyond that it is told 429 before its body is read at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from gateway import errors


@dataclass(slots=True)
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class Intake:
    threshold_bytes: int = 256 * 1024
    per_key: int = 1
    total: int = 4
    bytes_per_s: float = 16 * 1024 * 1024
    max_body_bytes: int = 4 * 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    _total: asyncio.Semaphore | None = None
    _keys: dict[str, _Slot] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _spend(self, key_id: str, size: int) -> None:
        """Take ``size`` bytes from the key's bucket, or refuse with 429 and when to come back."""
        now, burst = self.clock(), max(self.bytes_per_s, self.max_body_bytes)
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * self.bytes_per_s)
        bucket.at = now
        if bucket.tokens < size:
            wait = (size - bucket.tokens) / self.bytes_per_s
            raise errors.APIError(
                429, f"Too many large request bodies from this key: at most {self.bytes_per_s / 2**20:g} MB/s. "
                f"Retry in {wait:.1f}s.", type="requests", code="rate_limit_exceeded",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        bucket.tokens -= size
        if len(self._buckets) > 10_000:  # forget keys idle long enough to be full again
            full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.bytes_per_s >= burst]
            for k in full:
                del self._buckets[k]

    def large(self, declared_length: str | None) -> bool:
        return declared_length is None or not declared_length.isdigit() or int(declared_length) > self.threshold_bytes

    @contextlib.asynccontextmanager
    async def gate(self, key_id: str, declared_length: str | None) -> AsyncIterator[None]:
        """Hold the way in while a large body of ``key_id`` is read, parsed and planned."""
        if not self.large(declared_length):
            yield
            return
        size = int(declared_length) if declared_length and declared_length.isdigit() else self.max_body_bytes
        self._spend(key_id, min(size, self.max_body_bytes))
        if self._total is None:
            self._total = asyncio.Semaphore(self.total)
        slot = self._keys.get(key_id)
        if slot is None:
            slot = self._keys[key_id] = _Slot(asyncio.Semaphore(self.per_key))
        slot.users += 1
        try:
            async with slot.semaphore, self._total:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._keys[key_id]
