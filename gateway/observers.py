"""Routing and settlement events fanned out to their listeners: metrics, the fleet, the console.

The router and the settlement session each take one observer; the gateway hands
them a fan-out so that metrics, the fleet's load tracker and its overload watch
(and anything else) hear the same events, with no listener knowing the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from billing.records import UsageRecord
from billing.settlement import SettlementObserver
from routing.attempt import RoutingObserver
from routing.fleet.load import LoadTracker


class RoutingFanout:
    """One RoutingObserver that tells several."""

    def __init__(self, observers: Sequence[RoutingObserver]) -> None:
        self._observers = tuple(observers)

    def decision(self, policy: str, replica: Any, reason: str) -> None:
        for observer in self._observers:
            observer.decision(policy, replica, reason)

    def attempt_failed(self, replica: Any, error: Any) -> None:
        for observer in self._observers:
            observer.attempt_failed(replica, error)

    def unserved(self, model: str) -> None:
        for observer in self._observers:
            observer.unserved(model)


class SettlementFanout:
    """One SettlementObserver that tells several."""

    def __init__(self, observers: Sequence[SettlementObserver]) -> None:
        self._observers = tuple(observers)

    def settled(self, record: UsageRecord) -> None:
        for observer in self._observers:
            observer.settled(record)


class LoadRecorder:
    """Counts every served request as load for the fleet planner (refusals before any answer excluded)."""

    def __init__(self, tracker: LoadTracker) -> None:
        self._tracker = tracker

    def settled(self, record: UsageRecord) -> None:
        if record.status != "error":
            self._tracker.record(record.model, record.started_at, record.prompt_tokens, record.completion_tokens)


class OverloadWatch:
    """Tells the fleet when routing found no active replica meeting the SLO, or none at all."""

    def __init__(self, overloaded: Any) -> None:
        self._overloaded = overloaded

    def decision(self, policy: str, replica: Any, reason: str) -> None:
        if reason.startswith(("slo unmet", "standby overflow")):
            self._overloaded(replica.model)

    def attempt_failed(self, replica: Any, error: Any) -> None:
        return None

    def unserved(self, model: str) -> None:
        self._overloaded(model)
