"""Why a request could not be placed on a replica."""

from __future__ import annotations


class RoutingError(Exception):
    """Base of routing refusals; ``status`` is the HTTP status the gateway answers."""

    status: int = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class NoReplicaAvailable(RoutingError):
    """No replica of the model can take a request now (HTTP 503).

    ``retry_after`` is seconds until the soonest replica may be routable again
    (a breaker's half-open time or a 429's expiry); None when nothing will recover
    by itself (no replica at all, or all draining).
    """

    status = 503


class PreferenceUnsatisfiable(RoutingError):
    """The caller's routing preference matches no replica.

    ``status`` is 400 when no replica of the model runs on the requested chips at
    all (the caller asked for something that does not exist), 503 when such
    replicas exist but none is routable now (then ``retry_after`` may be set).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str = "routing.chips",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.param = param
