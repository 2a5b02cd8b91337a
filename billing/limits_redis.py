"""LimitStore on Redis: every gateway process shares the counters.

One Lua script checks ALL the checks of a request (key and tenant: requests,
tokens, concurrency, budget) and reserves all or nothing; Redis runs scripts one
at a time, so N gateways together never admit more than a limit. Times come from
the gateways' clocks (keep them NTP-synced): windows are named by their start.
Needs one Redis (or a Sentinel-managed primary), not Redis Cluster: a request's
counters live under different hash slots.

Amounts are integers; Lua compares them as doubles, exact below 2**53
(budgets under ~9 million USD in nano-USD). Redis itself adds them as int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from billing.errors import LimitsUnavailable
from billing.limits import (
    BudgetCheck,
    Check,
    CheckState,
    ConcurrencyCheck,
    Reservation,
    ReserveResult,
    WindowCheck,
    new_reservation_id,
)

# keep an ended budget counter a while, so late settlements still find it
_BUDGET_GRACE_S = 7 * 86_400

_RESERVE = """
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local n = #KEYS
local used = {}
local missing = {}
local function fmt(x) return string.format('%.0f', x) end
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local kind, limit, amount = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local k = KEYS[i]
  local cur = 0
  local absent = false
  if kind == 'w' then
    cur = tonumber(redis.call('GET', k) or '0')
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    cur = redis.call('ZCARD', k)
    amount = 1
  else
    local spent = redis.call('HGET', k, 'spent')
    if spent then
      cur = tonumber(spent)
    elseif ARGV[b + 5] ~= '' then
      cur = tonumber(ARGV[b + 5])
    else
      absent = true
      missing[#missing + 1] = tostring(i - 1)
    end
  end
  used[i] = cur
  if not absent and cur + amount > limit then
    local out = {'fail', tostring(i - 1)}
    for j = 1, i do out[#out + 1] = fmt(used[j]) end
    return out
  end
end
if #missing > 0 then
  local out = {'seed'}
  for _, v in ipairs(missing) do out[#out + 1] = v end
  return out
end
local out = {'ok'}
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local kind, amount, extra = ARGV[b + 1], ARGV[b + 3], ARGV[b + 4]
  local k = KEYS[i]
  local gen = ''
  if kind == 'w' then
    redis.call('INCRBY', k, amount)
    -- TTLs relative to the caller's clock, so only differences of its times matter
    redis.call('EXPIRE', k, math.ceil(tonumber(extra) - now) + 1)
    used[i] = used[i] + tonumber(amount)
  elseif kind == 'c' then
    local lease = tonumber(extra)
    redis.call('ZADD', k, now + lease, rid)
    redis.call('PEXPIRE', k, math.ceil(lease * 1000))
    used[i] = used[i] + 1
  else
    if not redis.call('HGET', k, 'spent') then
      redis.call('HSET', k, 'spent', ARGV[b + 5], 'gen', rid)
      if extra ~= '' then
        redis.call('EXPIRE', k, math.ceil(tonumber(extra) - now) + __GRACE__)
      end
    end
    redis.call('HINCRBY', k, 'spent', amount)
    used[i] = used[i] + tonumber(amount)
    gen = redis.call('HGET', k, 'gen')
  end
  out[#out + 1] = fmt(used[i])
  out[#out + 1] = gen
end
return out
""".replace("__GRACE__", str(_BUDGET_GRACE_S))

_SETTLE = """
local rid = ARGV[1]
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 4
  local kind, delta, gen, actual = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local k = KEYS[i]
  if kind == 'w' then
    if redis.call('EXISTS', k) == 1 then
      if redis.call('INCRBY', k, delta) < 0 then redis.call('SET', k, '0', 'KEEPTTL') end
    end
  elseif kind == 'c' then
    redis.call('ZREM', k, rid)
  elseif redis.call('EXISTS', k) == 1 then
    if redis.call('HGET', k, 'gen') == gen then
      if redis.call('HINCRBY', k, 'spent', delta) < 0 then redis.call('HSET', k, 'spent', '0') end
    else
      -- re-seeded after this reservation: count the charge again rather than undercount
      redis.call('HINCRBY', k, 'spent', actual)
    end
  end
end
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimitStore:
    """LimitStore shared by every gateway process that points at the same Redis."""

    def __init__(self, client: redis.Redis, *, prefix: str = "maas:") -> None:
        self._client = client
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "maas:") -> RedisLimitStore:
        """Connect lazily to ``redis://host:port/db``."""
        return cls(redis.Redis.from_url(url), prefix=prefix)

    def _key(self, check: Check, now: float) -> str:
        if isinstance(check, WindowCheck):
            return self.prefix + check.counter(now)[0]
        return self.prefix + check.counter

    async def reserve(
        self, checks: Sequence[Check], now: float, *, seeds: dict[int, int] | None = None,
        reservation_id: str | None = None,
    ) -> ReserveResult:
        rid = reservation_id or new_reservation_id()
        seeds = seeds or {}
        keys: list[str] = []
        args: list[str] = [repr(float(now)), rid]
        for i, check in enumerate(checks):
            keys.append(self._key(check, now))
            if isinstance(check, WindowCheck):
                args += ["w", str(check.limit), str(check.amount), repr(check.counter(now)[1]), ""]
            elif isinstance(check, ConcurrencyCheck):
                args += ["c", str(check.limit), "1", repr(float(check.lease_s)), ""]
            else:
                end = "" if check.period.end is None else repr(check.period.end)
                seed = str(seeds[i]) if i in seeds else ""
                args += ["b", str(check.limit), str(check.amount), end, seed]
        try:
            reply = [_text(v) for v in await self._reserve(keys=keys, args=args)]
        except RedisError as exc:
            raise LimitsUnavailable(f"Rate limits and budgets cannot be checked right now: {exc}") from exc
        if reply[0] == "seed":
            return ReserveResult(needs_seed=tuple(int(v) for v in reply[1:]))
        if reply[0] == "fail":
            failed = int(reply[1])
            used = [int(v) for v in reply[2:]]
            states = [
                CheckState(u + (_amount(c) if j < failed else 0), c.limit, _reset(c, now))
                for j, (c, u) in enumerate(zip(checks, used, strict=False))
            ]
            return ReserveResult(failed=failed, states=tuple(states))
        pairs = reply[1:]
        states = tuple(
            CheckState(int(pairs[2 * i]), c.limit, _reset(c, now)) for i, c in enumerate(checks)
        )
        generations = tuple(pairs[2 * i + 1] for i in range(len(checks)))
        reservation = Reservation(rid, tuple(checks), now, states, generations)
        return ReserveResult(reservation=reservation, states=states)

    async def settle(self, reservation: Reservation, actual: Sequence[int | None], now: float) -> None:
        keys: list[str] = []
        args: list[str] = [reservation.id]
        for check, amount, generation in zip(reservation.checks, actual, reservation.generations, strict=True):
            if isinstance(check, ConcurrencyCheck):
                keys.append(self._key(check, reservation.reserved_at))
                args += ["c", "0", "", "0"]
            elif amount is None or (isinstance(check, WindowCheck) and amount == check.amount):
                continue
            elif isinstance(check, WindowCheck):
                keys.append(self._key(check, reservation.reserved_at))
                args += ["w", str(amount - check.amount), "", "0"]
            else:
                keys.append(self._key(check, reservation.reserved_at))
                args += ["b", str(amount - check.amount), generation, str(amount)]
        if keys:
            try:
                await self._settle(keys=keys, args=args)
            except RedisError as exc:
                raise LimitsUnavailable(f"limit settlement failed: {exc}") from exc

    async def spent(self, check: BudgetCheck) -> int | None:
        """The counter of a budget check (None when not seeded)."""
        value = await self._client.hget(self.prefix + check.counter, "spent")
        return None if value is None else int(value)

    async def close(self) -> None:
        await self._client.aclose()


def _amount(check: Check) -> int:
    return 1 if isinstance(check, ConcurrencyCheck) else check.amount


def _reset(check: Check, now: float) -> float | None:
    if isinstance(check, WindowCheck):
        return check.counter(now)[1]
    if isinstance(check, BudgetCheck):
        return check.period.end
    return None
