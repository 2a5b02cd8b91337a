"""The last routing decisions of this process, kept for the operator's console.

A bounded ring (oldest entries fall off) fed by the router's observer: which
replica a policy chose for which model and why, and which attempts failed and
were retried elsewhere. It lives on the ``Gateway`` object, one per process;
with several gateway processes each one shows its own traffic.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: how many decisions the console can look back on (a few minutes at a few hundred requests/s)
DEFAULT_CAPACITY = 5000

Outcome = Literal["chosen", "failed", "unserved"]


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """One event: a replica chosen for an attempt, an attempt that failed, or a request no
    replica could take (``unserved``: no replica, so ``replica`` and ``chip`` are empty)."""

    at: float
    model: str
    replica: str
    chip: str
    simulated: bool
    policy: str
    outcome: Outcome
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at, "model": self.model, "replica": self.replica, "chip": self.chip,
            "simulated": self.simulated, "policy": self.policy, "outcome": self.outcome, "reason": self.reason,
        }


class DecisionLog:
    """Recent routing decisions, newest last; a RoutingObserver."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError("a decision log needs room for at least one decision")
        self.capacity = capacity
        self._entries: deque[RoutingDecision] = deque(maxlen=capacity)
        self._clock = clock
        self._policy = ""

    def decision(self, policy: str, replica: Any, reason: str) -> None:
        self._policy = policy
        self._entries.append(RoutingDecision(
            self._clock(), replica.model, replica.id, replica.chip, bool(getattr(replica, "simulated", False)),
            policy, "chosen", reason,
        ))

    def attempt_failed(self, replica: Any, error: Any) -> None:
        code = getattr(error, "code", None) or type(error).__name__
        self._entries.append(RoutingDecision(
            self._clock(), replica.model, replica.id, replica.chip, bool(getattr(replica, "simulated", False)),
            self._policy, "failed", code,
        ))

    def unserved(self, model: str) -> None:
        self._entries.append(RoutingDecision(
            self._clock(), model, "", "", False, self._policy, "unserved", "no replica could take the request",
        ))

    def recent(self, *, since: float | None = None, limit: int = 200, model: str | None = None) -> list[RoutingDecision]:
        """Up to ``limit`` entries at or after ``since`` (of ``model``), newest first."""
        found: list[RoutingDecision] = []
        for entry in reversed(self._entries):
            if since is not None and entry.at < since:
                break  # entries are appended in time order
            if model is None or entry.model == model:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found
