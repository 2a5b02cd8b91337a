"""Rate limits and budgets: reserve at admission, settle when the request ends.

A LimitStore evaluates a list of checks atomically: all are reserved or none is.
Checks are plain data built by the Biller, so the in-memory store (one process)
and the Redis store (many gateway processes) share semantics and tests.

Windows are **fixed** and aligned to the unix epoch (a "minute" is a UTC clock
minute): at most ``limit`` units are admitted per window, exactly, across all
processes; the reset time is the end of the current window. Concurrency slots are
leases that expire after ``lease_s`` so a crashed process cannot hold them forever.
Budget counters hold settled spend plus outstanding worst-case holds for one period;
a missing counter is seeded from the ledger (the store asks via ``needs_seed``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from billing.quotas import Period

CheckKind = Literal["window", "concurrency", "budget"]


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """At most ``limit`` units (requests or tokens) per fixed window of ``window_s`` seconds."""

    name: str  # "requests" or "tokens": what the x-ratelimit-* headers call it
    scope: str  # "key:<id>" or "tenant:<name>"
    limit: int
    amount: int
    window_s: int = 60
    kind: CheckKind = "window"

    def counter(self, now: float) -> tuple[str, float]:
        """(counter name, window end) for the window containing ``now``."""
        index = math.floor(now / self.window_s)
        return f"w:{self.name}:{self.scope}:{self.window_s}:{index}", float((index + 1) * self.window_s)


@dataclass(frozen=True, slots=True)
class ConcurrencyCheck:
    """At most ``limit`` requests in flight; a slot is a lease released at settle or after ``lease_s``."""

    scope: str
    limit: int
    lease_s: float = 900.0
    name: str = "concurrency"
    kind: CheckKind = "concurrency"

    @property
    def counter(self) -> str:
        return f"c:{self.scope}"


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """Spend in ``period`` plus this request's worst case (nano-USD) must stay within ``limit``."""

    scope: str
    period: Period
    limit: int
    amount: int
    name: str = "budget"
    kind: CheckKind = "budget"

    @property
    def counter(self) -> str:
        return f"b:{self.scope}:{self.period.id}"


Check = WindowCheck | ConcurrencyCheck | BudgetCheck


@dataclass(frozen=True, slots=True)
class CheckState:
    """A check's counter after the reservation (or, for the failing check, before it)."""

    used: int
    limit: int
    reset_at: float | None = None  # window end; None when it never resets by itself

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a successful reserve holds, to be given to settle."""

    id: str
    checks: tuple[Check, ...]
    reserved_at: float
    states: tuple[CheckState, ...]
    #: per check: the budget counter generation seen at reserve ("" for other kinds)
    generations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """Either ``reservation`` (all checks passed) or ``failed`` (index of the first refusal)."""

    reservation: Reservation | None = None
    failed: int | None = None
    states: tuple[CheckState, ...] = ()
    #: budget checks whose counter does not exist: seed them from the ledger and retry
    needs_seed: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reservation is not None


@runtime_checkable
class LimitStore(Protocol):
    """Atomic reserve/settle over counters shared by every gateway process that uses the store."""

    async def reserve(
        self, checks: Sequence[Check], now: float, *, seeds: dict[int, int] | None = None,
        reservation_id: str | None = None,
    ) -> ReserveResult:
        """Reserve every check or none. Budget checks without a counter and without a
        seed (index -> nano-USD) make it return ``needs_seed`` and change nothing."""

    async def settle(self, reservation: Reservation, actual: Sequence[int | None], now: float) -> None:
        """Replace each reserved amount by the actual one (None = keep), release leases."""

    async def close(self) -> None:
        """Release connections."""


def new_reservation_id() -> str:
    """Unique across processes (reservations of several gateways meet in one Redis)."""
    return os.urandom(12).hex()


@dataclass(slots=True)
class _Budget:
    spent: int
    generation: str
    expires_at: float | None


@dataclass(slots=True)
class MemoryLimitStore:
    """LimitStore for one process. No awaits inside an operation, so each is atomic."""

    _windows: dict[str, tuple[int, float]] = field(default_factory=dict)
    _leases: dict[str, dict[str, float]] = field(default_factory=dict)
    _budgets: dict[str, _Budget] = field(default_factory=dict)
    _ops: int = 0

    async def reserve(
        self, checks: Sequence[Check], now: float, *, seeds: dict[int, int] | None = None,
        reservation_id: str | None = None,
    ) -> ReserveResult:
        rid = reservation_id or new_reservation_id()
        seeds = seeds or {}
        self._maybe_prune(now)
        missing = tuple(
            i for i, c in enumerate(checks)
            if isinstance(c, BudgetCheck) and c.counter not in self._budgets and i not in seeds
        )
        if missing:
            return ReserveResult(needs_seed=missing)
        states: list[CheckState] = []
        for i, check in enumerate(checks):
            if isinstance(check, WindowCheck):
                name, end = check.counter(now)
                used = self._windows.get(name, (0, end))[0]
                state = CheckState(used + check.amount, check.limit, end)
            elif isinstance(check, ConcurrencyCheck):
                leases = self._leases.get(check.counter)
                live = 0 if leases is None else len(leases)
                if live >= check.limit and leases is not None:
                    # only when it could refuse: leases of requests that never settled expire
                    live = sum(1 for expiry in leases.values() if expiry > now)
                state = CheckState(live + 1, check.limit, None)
            else:
                budget = self._budgets.get(check.counter)
                used = budget.spent if budget is not None else seeds[i]
                state = CheckState(used + check.amount, check.limit, check.period.end)
            if state.used > state.limit:
                refused = CheckState(state.used - _amount(check), state.limit, state.reset_at)
                return ReserveResult(failed=i, states=(*states, refused))
            states.append(state)
        generations: list[str] = []
        for i, check in enumerate(checks):
            if isinstance(check, WindowCheck):
                name, end = check.counter(now)
                used = self._windows.get(name, (0, end))[0]
                self._windows[name] = (used + check.amount, end)
                generations.append("")
            elif isinstance(check, ConcurrencyCheck):
                leases = self._leases.setdefault(check.counter, {})
                if len(leases) >= check.limit:
                    for lease, expiry in list(leases.items()):
                        if expiry <= now:
                            del leases[lease]
                leases[rid] = now + check.lease_s
                generations.append("")
            else:
                budget = self._budgets.get(check.counter)
                if budget is None:
                    budget = self._budgets[check.counter] = _Budget(seeds[i], rid, check.period.end)
                budget.spent += check.amount
                generations.append(budget.generation)
        reservation = Reservation(rid, tuple(checks), now, tuple(states), tuple(generations))
        return ReserveResult(reservation=reservation, states=tuple(states))

    async def settle(self, reservation: Reservation, actual: Sequence[int | None], now: float) -> None:
        for check, amount, generation in zip(reservation.checks, actual, reservation.generations, strict=True):
            if isinstance(check, WindowCheck):
                if amount is None or amount == check.amount:
                    continue
                name, end = check.counter(reservation.reserved_at)
                if name in self._windows:  # a window that has ended needs no correction
                    used = self._windows[name][0]
                    self._windows[name] = (max(used + amount - check.amount, 0), end)
            elif isinstance(check, ConcurrencyCheck):
                self._leases.get(check.counter, {}).pop(reservation.id, None)
            else:
                budget = self._budgets.get(check.counter)
                if budget is None or amount is None:
                    continue  # no counter: the next reservation seeds it from the ledger
                if budget.generation == generation:
                    budget.spent = max(budget.spent + amount - check.amount, 0)
                else:
                    # re-seeded after we reserved: the seed may or may not include this
                    # request; count it again rather than risk undercounting spend
                    budget.spent += amount

    async def close(self) -> None:
        return None

    async def spent(self, check: BudgetCheck) -> int | None:
        """The counter of a budget check (None when not seeded): for reports and tests."""
        budget = self._budgets.get(check.counter)
        return None if budget is None else budget.spent

    def _maybe_prune(self, now: float) -> None:
        self._ops += 1
        if self._ops % 1024:
            return
        for name, (_, end) in list(self._windows.items()):
            if end <= now:
                del self._windows[name]
        for name, leases in list(self._leases.items()):
            for lease, expiry in list(leases.items()):
                if expiry <= now:
                    del leases[lease]
            if not leases:
                del self._leases[name]
        for name, budget in list(self._budgets.items()):
            if budget.expires_at is not None and budget.expires_at <= now:
                del self._budgets[name]


def _amount(check: Check) -> int:
    return 1 if isinstance(check, ConcurrencyCheck) else check.amount


def open_limit_store(url: str, *, prefix: str = "maas:") -> LimitStore:
    """``memory`` (one process) or ``redis://host:port/db`` (shared by every gateway)."""
    if url in ("memory", "memory://"):
        return MemoryLimitStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from billing.limits_redis import RedisLimitStore

        return RedisLimitStore.from_url(url, prefix=prefix)
    raise ValueError(f"unsupported limits store {url!r}: use 'memory' or redis://host:port/db")
