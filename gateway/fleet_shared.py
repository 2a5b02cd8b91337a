"""What several gateway processes share about the fleet, through Redis.

* a lease: exactly one process plans and actuates at a time; it renews the lease
  every tick, and when it dies another takes over once the lease expires
  (``ttl_s``, three planner intervals by default);
* load: each process publishes its own arrival counters; the leader plans on
  their sum;
* the plan and the membership the leader enacted: the others show the same plan
  and route to the same replicas (those reachable over the network).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import orjson
import redis.asyncio as redis

from routing.fleet.load import BucketCounts, LoadTracker, LoadWindow

# renew only if we still hold it; take it if nobody does
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SharedFleet:
    """Lease, summed load, plan and membership in Redis under ``prefix``."""

    def __init__(self, client: redis.Redis, *, prefix: str = "maas:fleet:", ttl_s: float = 15.0) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = max(1000, int(ttl_s * 1000))
        #: who this process is (unique across restarts and machines)
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @classmethod
    def from_url(cls, url: str, *, ttl_s: float, prefix: str = "maas:fleet:") -> SharedFleet:
        return cls(redis.Redis.from_url(url), prefix=prefix, ttl_s=ttl_s)

    async def hold(self, now: float) -> bool:
        """Take or renew the lease; True while this process is the leader."""
        return bool(await self._redis.eval(_HOLD, 1, self._prefix + "leader", self.identity, self._ttl_ms))

    async def leader(self) -> str | None:
        value = await self._redis.get(self._prefix + "leader")
        return None if value is None else value.decode()

    async def release(self) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, self._prefix + "leader", self.identity)
        finally:
            await self._redis.aclose()

    async def publish_load(self, tracker: LoadTracker, now: float) -> None:
        """This process's arrival counters per model (kept as long as a load window)."""
        windows = {
            model: {str(i): [c.requests, c.prompt_tokens, c.output_tokens] for i, c in tracker.window(model).buckets.items()}
            for model in tracker.models()
        }
        payload = orjson.dumps({"bucket_s": tracker.config.bucket_s, "windows": windows})
        ttl = int(max(tracker.config.window_s, tracker.config.peak_window_s) * 1000) + self._ttl_ms
        await self._redis.set(f"{self._prefix}load:{self.identity}", payload, px=ttl)

    async def other_loads(self, model: str, now: float) -> list[LoadWindow]:
        """The other processes' counters for ``model``."""
        out = []
        async for key in self._redis.scan_iter(match=f"{self._prefix}load:*", count=100):
            if key.decode().endswith(self.identity):
                continue
            raw = await self._redis.get(key)
            if raw is None:
                continue
            data = orjson.loads(raw)
            buckets = data["windows"].get(model)
            if buckets:
                out.append(LoadWindow(data["bucket_s"], {int(i): BucketCounts(*v) for i, v in buckets.items()}))
        return out

    async def publish_plan(self, model: str, view: dict[str, Any]) -> None:
        await self._redis.set(f"{self._prefix}plan:{model}", orjson.dumps(view), px=self._ttl_ms * 4)

    async def plan(self, model: str) -> dict[str, Any] | None:
        raw = await self._redis.get(f"{self._prefix}plan:{model}")
        return None if raw is None else orjson.loads(raw)

    async def publish_members(self, members: list[dict[str, Any]]) -> None:
        await self._redis.set(self._prefix + "members", orjson.dumps(members), px=self._ttl_ms * 4)

    async def members(self) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(self._prefix + "members")
        return None if raw is None else orjson.loads(raw)
