"""How an OpenAI-compatible upstream's failures become the gateway's typed errors.

An upstream's error body is never passed on to tenants: it may carry the
upstream's internals (paths, versions, other tenants' text in a shared server's
message, whatever a hostile server chooses to say). It is logged for the operator,
and the tenant gets our own message: the status class, the parameter when the
upstream names a plausible one, and whether the request overflowed the context.
``Retry-After`` is read defensively: seconds or an HTTP date, finite, capped.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC

import orjson

from backends.base import BackendError, ReplicaUnavailable, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout

log = logging.getLogger("maas.upstream")

#: an upstream saying "come back in an hour" must not take a replica out of routing for that long
MAX_RETRY_AFTER_S = 300.0
_CLIENT_ERRORS = frozenset({400, 404, 409, 413, 422})
_LOGGED_BYTES = 2000
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]]{0,63}$")
_CONTEXT_OVERFLOW = re.compile(
    r"context length|context window|maximum context|max_model_len|too many tokens|prompt is too long|"
    r"longer than the maximum",
    re.IGNORECASE,
)


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or HTTP date) in [0, MAX_RETRY_AFTER_S]; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None  # "inf", "nan", 1e999: no usable promise
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def upstream_detail(payload: bytes) -> tuple[str, str | None]:
    """The upstream's own message and ``param`` (for the operator's log and for classifying)."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        data = orjson.loads(payload)
        err = data.get("error", data)
        if isinstance(err, dict):
            param = err.get("param")
            return str(err.get("message") or err), param if isinstance(param, str) else None
        return str(err), None
    return payload[:_LOGGED_BYTES].decode(errors="replace"), None


def status_error(replica_id: str, status: int, payload: bytes, headers: Mapping[str, str]) -> BackendError:
    """The typed error for an upstream's non-200 answer; its body goes to the log only."""
    message, param = upstream_detail(payload)
    log.warning("replica %s answered HTTP %d: %s", replica_id, status, message[:_LOGGED_BYTES])
    retry_after = retry_after_s(headers.get("retry-after"))
    if status == 429:
        return UpstreamRateLimited(f"replica {replica_id} is busy", retry_after=retry_after)
    if status in _CLIENT_ERRORS:
        param = param if param is not None and _PARAM.match(param) else None
        if _CONTEXT_OVERFLOW.search(message):
            rejected = UpstreamRejected(
                "The request does not fit the model's context window (prompt plus max_tokens); shorten it.",
                status=400,
                param=param or "messages",
            )
            rejected.code = "context_length_exceeded"
            return rejected
        about = f" (parameter '{param}')" if param else ""
        return UpstreamRejected(
            f"The replica serving this model rejected the request as invalid{about}.",
            status=400 if status == 422 else status,
            param=param,
        )
    if status in (401, 403):
        # the gateway's own upstream credentials are wrong: an operator problem, not the client's
        return ReplicaUnavailable(f"replica {replica_id} refused the gateway's credentials")
    if status == 504:
        return UpstreamTimeout(f"replica {replica_id} timed out upstream")
    return ReplicaUnavailable(f"replica {replica_id} answered HTTP {status}", retry_after=retry_after)


def stream_error(replica_id: str, payload: bytes) -> BackendError:
    """The typed error for an ``{"error": ...}`` event in the middle of a stream (body logged only)."""
    message, _ = upstream_detail(payload)
    log.warning("replica %s failed mid-stream: %s", replica_id, message[:_LOGGED_BYTES])
    return ReplicaUnavailable(f"replica {replica_id} failed mid-stream")
