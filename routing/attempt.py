"""One try of one request on one replica, and how its outcome is recorded.

Every attempt ends exactly once, in one of three ways: succeeded (telemetry,
breaker and scorecard learn), failed (the replica's fault: counts against it),
or abandoned (the caller went away, or the replica said 429: says nothing about
its health).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from backends.base import BackendError, UpstreamRateLimited
from routing.replica import Replica
from routing.scorecard import Scorecard
from routing.telemetry import InFlight

#: how long a replica that said 429 without Retry-After is left alone
DEFAULT_BUSY_S = 1.0


class RoutingObserver(Protocol):
    """Receives routing events (the gateway plugs its Prometheus metrics in here)."""

    def decision(self, policy: str, replica: Replica, reason: str) -> None:
        """A policy chose ``replica`` for an attempt."""
        ...

    def attempt_failed(self, replica: Replica, error: BackendError) -> None:
        """An attempt on ``replica`` failed with ``error`` (it may be retried)."""
        ...

    def unserved(self, model: str) -> None:
        """No replica of ``model`` could take a request (the fleet should grow)."""
        ...


class Attempt:
    """A request outstanding on one replica; ends once via one of the methods."""

    def __init__(
        self,
        replica: Replica,
        ticket: InFlight,
        *,
        clock: Callable[[], float],
        scorecard: Scorecard,
        observer: RoutingObserver | None,
    ) -> None:
        self.replica = replica
        self.ticket = ticket
        self._clock = clock
        self._scorecard = scorecard
        self._observer = observer
        self.started = clock()
        self.first_token_at: float | None = None
        self.replica_seconds = 0.0
        self.ended = False

    def first_token(self) -> None:
        """The first chunk arrived."""
        if self.first_token_at is None:
            self.first_token_at = self._clock()
            self.replica.telemetry.first_token(self.ticket)

    def succeeded(self, output_tokens: int | None) -> None:
        """The replica answered in full (``output_tokens``: the engine's count, None when unreported)."""
        if self._end(ok=True, output_tokens=output_tokens):
            self.replica.breaker.record_success()
            ttft = None if self.first_token_at is None else self.first_token_at - self.started
            self._scorecard.record(
                self.replica.chip,
                True,
                ttft,
                output_tokens or 0,
                self._clock() - self.started,
                self.replica.cost_per_hour,
                replica_seconds=self.replica_seconds,
            )

    def failed(self, error: BackendError, *, output_tokens: int | None = None) -> None:
        """The attempt ended in ``error``; what it means depends on the kind."""
        if self.ended:
            return
        replica = self.replica
        if isinstance(error, UpstreamRateLimited):
            # overloaded, not broken: leave it alone for a while, don't trip the breaker
            self._end(ok=None)
            replica.breaker.release()
            wait = error.retry_after if error.retry_after and error.retry_after > 0 else DEFAULT_BUSY_S
            replica.busy_until = max(replica.busy_until, self._clock() + wait)
        elif not error.retryable:
            # the replica answered properly: the request itself was refused
            self._end(ok=None)
            replica.breaker.record_success()
        else:
            self._end(ok=False, output_tokens=output_tokens)
            replica.breaker.record_failure(self._clock())
            self._scorecard.record(
                replica.chip,
                False,
                None,
                output_tokens or 0,
                self._clock() - self.started,
                replica.cost_per_hour,
                replica_seconds=self.replica_seconds,
            )
        if self._observer is not None:
            self._observer.attempt_failed(replica, error)

    def crashed(self) -> None:
        """The backend raised something that is not a BackendError: count it as a failure."""
        if self._end(ok=False):
            self.replica.breaker.record_failure(self._clock())

    def abandoned(self) -> None:
        """The caller went away (cancelled, stream closed early)."""
        if self._end(ok=None):
            if self.first_token_at is not None:
                # it was serving fine until the caller left
                self.replica.breaker.record_success()
            else:
                self.replica.breaker.release()

    def _end(self, *, ok: bool | None, output_tokens: int | None = None) -> bool:
        if self.ended:
            return False
        self.ended = True
        self.replica_seconds = self.replica.telemetry.finish(self.ticket, ok=ok, output_tokens=output_tokens)
        return True
