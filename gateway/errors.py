"""Errors the HTTP surface returns, always in OpenAI's shape.

``{"error": {"message", "type", "param", "code"}}`` with the right status; no
request, however malformed, gets a 500 with a stack trace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import orjson


class APIError(Exception):
    """An error answered to the client as an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def anthropic_body(self) -> dict:
        """The same error in Anthropic's shape (the Messages surface)."""
        return {"type": "error", "error": {"type": anthropic_error_type(self.status), "message": self.message}}

    def anthropic_body_bytes(self) -> bytes:
        return orjson.dumps(self.anthropic_body())


#: Anthropic's error types by HTTP status (docs.anthropic.com, "Errors")
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return _ANTHROPIC_TYPES.get(status, "api_error")


def bad_request(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def invalid_json(detail: str) -> APIError:
    return APIError(400, f"We could not parse the JSON body of your request: {detail}", code="invalid_json")


def missing_key() -> APIError:
    return APIError(
        401,
        "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' (or 'x-api-key: YOUR_KEY').",
        type="authentication_error",
        code="invalid_api_key",
    )


def invalid_key() -> APIError:
    return APIError(401, "Incorrect API key provided.", type="authentication_error", code="invalid_api_key")


def key_revoked() -> APIError:
    return APIError(403, "This API key has been revoked.", type="permission_error", code="key_revoked")


def model_not_allowed(model: str) -> APIError:
    return APIError(
        403,
        f"This API key is not allowed to use the model '{model}'.",
        type="permission_error",
        code="model_not_allowed",
        param="model",
    )


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def context_length_exceeded(window: int, prompt_tokens: int, max_tokens: int | None) -> APIError:
    """OpenAI's 400 for a prompt (plus the output asked for) beyond the model's context window."""
    if max_tokens is None:
        detail = f"your messages resulted in about {prompt_tokens} tokens"
    else:
        detail = (
            f"you requested about {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion)"
        )
    return APIError(
        400,
        f"This model's maximum context length is {window} tokens. However, {detail}. "
        "Please reduce the length of the messages or completion.",
        param="messages",
        code="context_length_exceeded",
    )


def not_found(what: str) -> APIError:
    return APIError(404, f"{what} not found.", code="not_found")


def unsupported_media_type(content_type: str) -> APIError:
    shown = content_type or "none"
    return APIError(
        415, f"Unsupported content type '{shown}': send the body as JSON with 'Content-Type: application/json'.",
        code="unsupported_media_type",
    )


def body_too_large(limit: int) -> APIError:
    return APIError(413, f"Request body is larger than the limit of {limit} bytes.", code="request_too_large")


def admin_required() -> APIError:
    return APIError(401, "This endpoint needs the admin key.", type="authentication_error", code="invalid_admin_key")


def unavailable(message: str, *, retry_after: float | None = None, code: str = "replica_unavailable") -> APIError:
    finite = retry_after is not None and math.isfinite(retry_after)
    headers = {"retry-after": str(max(1, round(min(retry_after, 3600))))} if finite else None
    return APIError(503, message, type="service_unavailable_error", code=code, headers=headers)


def upstream_timeout(message: str) -> APIError:
    return APIError(504, message, type="timeout_error", code="upstream_timeout")


def internal_error() -> APIError:
    return APIError(500, "The gateway failed to process your request.", type="server_error", code="internal_error")
