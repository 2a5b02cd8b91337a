"""Slows down guessing of the admin key: exponential lockout per client address.

The first few wrong keys from an address cost nothing (typos happen); after that each
further failure locks the address out for twice as long as the last one, up to
``max_lockout_s``. While locked out, the address gets 429 without its key being
compared at all, so a guess made during a lockout teaches nothing. A success, or
``forget_after_s`` without failures, clears the address. Addresses are kept in a
bounded LRU so a flood of spoofed sources cannot grow memory without limit.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


class AdminAuthThrottle:
    """Failed admin authentications per client address, and the lockout they earn."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_lockout_s: float = 1.0,
        max_lockout_s: float = 300.0,
        forget_after_s: float = 900.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_lockout_s = base_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_after_s = forget_after_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds ``address`` must wait before its next try, or None when it may try now."""
        entry = self._current(address)
        if entry is None:
            return None
        left = entry.locked_until - self._clock()
        return math.ceil(left) if left > 0 else None

    def failed(self, address: str) -> tuple[int, float]:
        """Record a wrong key; returns (failures in a row, seconds of lockout now imposed)."""
        now = self._clock()
        entry = self._current(address) or _Failures()
        entry.count += 1
        entry.last_at = now
        lockout = 0.0
        over = entry.count - self.free_failures
        if over > 0:
            lockout = min(self.base_lockout_s * 2 ** min(over - 1, 32), self.max_lockout_s)
            entry.locked_until = now + lockout
        self._by_address[address] = entry
        self._by_address.move_to_end(address)
        while len(self._by_address) > self.max_addresses:
            self._by_address.popitem(last=False)
        return entry.count, lockout

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)

    def _current(self, address: str) -> _Failures | None:
        entry = self._by_address.get(address)
        if entry is not None and self._clock() - entry.last_at > self.forget_after_s:
            del self._by_address[address]
            return None
        return entry
