"""The errors billing raises to the gateway: 429 for limits and budgets, 503 when limits cannot be checked."""

from __future__ import annotations


class BillingError(Exception):
    """Base of billing refusals."""

    status = 429
    code = "billing_error"
    type = "billing_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RateLimitExceeded(BillingError):
    """A request, token or concurrency limit of the key or its tenant is reached."""

    code = "rate_limit_exceeded"
    type = "requests"

    def __init__(
        self,
        message: str,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
        *,
        limit: str = "requests",
    ) -> None:
        super().__init__(message)
        #: which limit refused: "requests", "tokens" or "concurrency"; OpenAI's error type is
        #: "tokens" for the token limit and "requests" for the others
        self.limit = limit
        self.type = "tokens" if limit == "tokens" else "requests"
        self.headers = dict(headers or {})
        self.retry_after = retry_after
        if retry_after is not None:
            # whole seconds, rounded up, as HTTP's Retry-After requires
            self.headers.setdefault("retry-after", str(max(1, -int(-retry_after // 1))))


class QuotaExceeded(BillingError):
    """The key's or tenant's budget cannot cover the request's worst-case charge."""

    code = "insufficient_quota"
    type = "insufficient_quota"


class LimitsUnavailable(BillingError):
    """The limit store (Redis) cannot be reached: requests are refused rather than admitted unchecked."""

    status = 503
    code = "limits_unavailable"
    type = "server_error"


class UnknownModel(LookupError):
    """The price book has no price for the model."""


class LedgerUnavailable(Exception):
    """The ledger could not make a record durable in time; it keeps retrying in the background."""
