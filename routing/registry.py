"""The set of replicas the router may choose from, by id and by model."""

from __future__ import annotations

import asyncio

from routing.replica import Replica, ReplicaState


class UnknownReplica(KeyError):
    """No replica with that id is registered."""


class ReplicaRegistry:
    """Replicas by id, in insertion order. Not thread-safe: one event loop owns it."""

    def __init__(self, replicas: list[Replica] | None = None, *, poll_s: float = 0.05) -> None:
        self._replicas: dict[str, Replica] = {}
        #: for_model's answers, rebuilt when membership changes (asked several times per request)
        self._by_model: dict[str, list[Replica]] = {}
        self._poll_s = poll_s
        for replica in replicas or ():
            self.add(replica)

    def add(self, replica: Replica) -> None:
        """Register a replica; its id must be new."""
        if replica.id in self._replicas:
            raise ValueError(f"replica {replica.id!r} is already registered")
        self._replicas[replica.id] = replica
        self._by_model.clear()

    def drain(self, id: str) -> Replica:
        """Stop sending new requests to a replica; in-flight ones finish."""
        replica = self._require(id)
        replica.state = ReplicaState.DRAINING
        return replica

    def undrain(self, id: str) -> Replica:
        """Take new requests again."""
        replica = self._require(id)
        replica.state = ReplicaState.ACTIVE
        return replica

    async def remove(self, id: str, *, timeout_s: float = 30.0) -> int:
        """Drain a replica, wait up to ``timeout_s`` for its in-flight requests,
        then unregister it. Returns how many requests were still in flight (0: clean).

        The backend is not closed here: whoever started it closes it.
        """
        replica = self.drain(id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout_s
        while replica.telemetry.in_flight > 0 and loop.time() < give_up:
            await asyncio.sleep(min(self._poll_s, max(0.0, give_up - loop.time())))
        self._replicas.pop(id, None)
        self._by_model.clear()
        return replica.telemetry.in_flight

    def remove_now(self, id: str) -> None:
        """Unregister at once (a replica that never served, or one being stopped)."""
        self._replicas.pop(id, None)
        self._by_model.clear()

    def get(self, id: str) -> Replica | None:
        """The replica with this id, or None."""
        return self._replicas.get(id)

    def all(self) -> list[Replica]:
        """Every registered replica, draining ones included."""
        return list(self._replicas.values())

    def for_model(self, model: str) -> list[Replica]:
        """Replicas serving ``model`` (canonical name), draining ones included (a shared list: don't change it)."""
        found = self._by_model.get(model)
        if found is None:
            found = self._by_model[model] = [r for r in self._replicas.values() if r.model == model]
        return found

    def models(self) -> list[str]:
        """Model names that have at least one replica."""
        return sorted({r.model for r in self._replicas.values()})

    def __len__(self) -> int:
        return len(self._replicas)

    def _require(self, id: str) -> Replica:
        try:
            return self._replicas[id]
        except KeyError:
            raise UnknownReplica(id) from None
