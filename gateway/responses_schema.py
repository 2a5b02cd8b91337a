"""``POST /v1/responses``: the request body, typed after OpenAI's Responses API reference.

Input items are checked here and normalised to the shapes OpenAI lists under
``GET /v1/responses/{id}/input_items`` (every item with an ``id``, message
content as typed parts), so what is stored, listed and replayed is one shape.
Only what the gateway can honour is accepted: hosted tools, images and files,
background runs and server-side conversations are refused with a 400 naming
the field, never ignored.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway import errors
from gateway.chat_schema import check_metadata

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_ROLES = frozenset({"user", "assistant", "system", "developer"})


def new_id(prefix: str) -> str:
    """An unguessable id of OpenAI's form (``resp_...``, ``msg_...``, ``fc_...``)."""
    return f"{prefix}_{secrets.token_hex(24)}"


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesBody(BaseModel):
    """The fields of ``POST /v1/responses`` this gateway serves; any other is a 400."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = Field(default=None, max_length=128)
    prompt_cache_key: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    background: bool | None = None
    #: maas extension: per-request routing preference
    routing: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(value)

    @property
    def stores(self) -> bool:
        """OpenAI stores responses unless told not to."""
        return self.store is not False

    def refuse_unsupported(self) -> None:
        if self.background:
            raise errors.bad_request(
                "Background responses are not supported; send the request without 'background'.",
                param="background", code="unsupported_parameter",
            )

    def input_items(self) -> list[dict[str, Any]]:
        """The input as normalised items (a string is one user message)."""
        if isinstance(self.input, str):
            return [_message_item("user", [{"type": "input_text", "text": self.input}])]
        if not self.input:
            raise errors.bad_request("'input' must not be empty.", param="input")
        return [_normalise(item, f"input[{i}]") for i, item in enumerate(self.input)]


def _message_item(role: str, content: list[dict[str, Any]], item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("msg"), "type": "message", "role": role, "status": "completed", "content": content}


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise errors.bad_request(f"'{param}' must be a string.", param=param)
    return value


def _parts(content: Any, role: str, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "output_text" if role == "assistant" else "input_text", "text": content}]
    if not isinstance(content, list) or not content:
        raise errors.bad_request(f"'{param}' must be a string or a non-empty list of content parts.", param=param)
    parts = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            parts.append({**part, "type": kind, "text": _text(part.get("text"), f"{where}.text")})
        elif kind == "refusal":
            parts.append({"type": "refusal", "refusal": _text(part.get("refusal"), f"{where}.refusal")})
        else:
            raise errors.bad_request(
                f"Content parts of type {kind!r} are not supported here; send text ('input_text').",
                param=f"{where}.type", code="unsupported_value",
            )
    return parts


def _normalise(item: Any, param: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise errors.bad_request(f"'{param}' must be an object.", param=param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise errors.bad_request(
                f"'{param}.role' must be one of user, assistant, system, developer.", param=f"{param}.role"
            )
        return _message_item(role, _parts(item.get("content"), role, f"{param}.content"), item.get("id"))
    if kind == "function_call":
        return {
            "id": item.get("id") or new_id("fc"),
            "type": "function_call",
            "call_id": _text(item.get("call_id"), f"{param}.call_id"),
            "name": _text(item.get("name"), f"{param}.name"),
            "arguments": _text(item.get("arguments"), f"{param}.arguments"),
            "status": "completed",
        }
    if kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = "".join(_text(p.get("text"), f"{param}.output") for p in _parts(output, "user", f"{param}.output"))
        return {
            "id": item.get("id") or new_id("fco"),
            "type": "function_call_output",
            "call_id": _text(item.get("call_id"), f"{param}.call_id"),
            "output": _text(output, f"{param}.output"),
            "status": "completed",
        }
    if kind == "reasoning":
        return {"id": item.get("id") or new_id("rs"), "type": "reasoning", "summary": item.get("summary") or []}
    raise errors.bad_request(
        f"Input items of type {kind!r} are not supported; send messages, function_call and function_call_output "
        "items (or continue a stored response with previous_response_id).",
        param=f"{param}.type", code="unsupported_value",
    )
