"""The one table from domain errors to what the client is told.

Routing, billing and backends raise their own exceptions; this module is the only
place they become HTTP statuses, error types and codes. The edge looks an
exception up by walking its class hierarchy (the most specific entry wins), so a
new subclass inherits its parent's answer. Anything not in the table is a 500
whose details stay in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from pydantic import ValidationError

from backends.base import BackendError, UpstreamRateLimited, UpstreamRejected
from billing.errors import LedgerUnavailable, LimitsUnavailable, QuotaExceeded, RateLimitExceeded
from gateway import errors
from gateway.errors import APIError
from gateway.schemas import validation_error
from routing.errors import NoReplicaAvailable, PreferenceUnsatisfiable
from routing.preferences import InvalidPreference
from routing.registry import UnknownReplica


def _backend(exc: BackendError) -> APIError:
    if exc.status == 504:
        return errors.upstream_timeout(exc.message)
    # a replica that just failed is probed again within a breaker cooldown: tell clients to come back
    return errors.unavailable(exc.message, retry_after=exc.retry_after or 1)


def _rejected(exc: UpstreamRejected) -> APIError:
    return APIError(exc.status, exc.message, param=exc.param, code=exc.code)


def _busy(exc: UpstreamRateLimited) -> APIError:
    return errors.unavailable(
        "Every replica of this model is busy; retry shortly.", retry_after=exc.retry_after or 1, code="replicas_busy"
    )


def _rate_limited(exc: RateLimitExceeded) -> APIError:
    return APIError(429, exc.message, type=exc.type, code=exc.code, headers=exc.headers)


def _quota(exc: QuotaExceeded) -> APIError:
    return APIError(429, exc.message, type="insufficient_quota", code="insufficient_quota")


def _limits_down(exc: LimitsUnavailable) -> APIError:
    # refused, never admitted unchecked
    return errors.unavailable(exc.message, retry_after=1, code=exc.code)


def _ledger_down(exc: LedgerUnavailable) -> APIError:
    # the answer exists but its usage row is not durable: never report it complete
    return errors.unavailable(
        "Usage could not be recorded; the answer is withheld. Retry shortly.", retry_after=1, code="ledger_unavailable"
    )


def _no_replica(exc: NoReplicaAvailable) -> APIError:
    return errors.unavailable(exc.message, retry_after=exc.retry_after)


def _preference(exc: PreferenceUnsatisfiable) -> APIError:
    if exc.status == 400:
        return errors.bad_request(exc.message, param=exc.param, code="preference_unsatisfiable")
    return errors.unavailable(exc.message, retry_after=exc.retry_after, code="preference_unsatisfiable")


def _invalid_preference(exc: InvalidPreference) -> APIError:
    return errors.bad_request(exc.message, param=exc.param)


def _unknown_replica(exc: UnknownReplica) -> APIError:
    return errors.not_found(f"Replica {exc.args[0]}")


_TABLE: MappingProxyType[type[BaseException], Callable[..., APIError]] = MappingProxyType({
    APIError: lambda exc: exc,
    ValidationError: validation_error,
    InvalidPreference: _invalid_preference,
    RateLimitExceeded: _rate_limited,
    QuotaExceeded: _quota,
    LimitsUnavailable: _limits_down,
    LedgerUnavailable: _ledger_down,
    NoReplicaAvailable: _no_replica,
    PreferenceUnsatisfiable: _preference,
    UpstreamRejected: _rejected,
    UpstreamRateLimited: _busy,
    BackendError: _backend,
    UnknownReplica: _unknown_replica,
})


def to_api_error(exc: BaseException) -> APIError:
    """The client's view of ``exc`` (a 500 for anything unexpected)."""
    for cls in type(exc).__mro__:
        convert = _TABLE.get(cls)
        if convert is not None:
            return convert(exc)
    return errors.internal_error()


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` has an entry (anything else is logged with its trace)."""
    return any(cls in _TABLE for cls in type(exc).__mro__)
