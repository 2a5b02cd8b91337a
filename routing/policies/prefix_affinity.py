"""prefix_affinity: requests sharing a prompt prefix go to the same replica, so
its prefix (KV) cache hits, unless that replica is overloaded.

Rendezvous (highest-random-weight) hashing: adding or removing a replica moves
only the prefixes that hashed to it. "Overloaded" is bounded-load hashing: the
owner is skipped when it holds more than ``imbalance`` x the least loaded
candidate's sequences (+ ``slack``), or is at its engine's max batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from routing.policies.base import Decision, rotation_pick
from routing.replica import Replica
from routing.route import RouteRequest


def rendezvous_weight(prefix_key: str, replica_id: str) -> int:
    """Stable hash weight of a (prefix, replica) pair; same on every gateway copy."""
    digest = hashlib.blake2b(f"{prefix_key}\x00{replica_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class PrefixAffinityPolicy:
    """Rendezvous hash of ``prefix_key`` while the owner's load allows, else least loaded."""

    name = "prefix_affinity"

    def __init__(self, *, imbalance: float = 2.0, slack: int = 4) -> None:
        self.imbalance = imbalance
        self.slack = slack
        self._last: dict[str, str] = {}

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        fewest = min(r.telemetry.outstanding_sequences() for r in candidates)
        if route.prefix_key is not None:
            owner = max(candidates, key=lambda r: rendezvous_weight(route.prefix_key or "", r.id))
            if self._load_allows(owner, fewest, route.n):
                return Decision(owner, "prefix affinity")
            reason = "prefix owner busy: least loaded"
        else:
            reason = "no prefix: least loaded"
        tied = [r for r in candidates if r.telemetry.outstanding_sequences() == fewest]
        replica = rotation_pick(tied, self._last.get(route.model))
        self._last[route.model] = replica.id
        return Decision(replica, reason)

    def _load_allows(self, owner: Replica, fewest: int, sequences: int) -> bool:
        load = owner.telemetry.outstanding_sequences()
        if owner.profile is not None and load + sequences > owner.profile.max_batch:
            return False
        return load <= self.imbalance * fewest + self.slack
