"""Render completions and stream chunks exactly as OpenAI's API does.

``model`` is whatever the caller passes: the request plan passes the model's
canonical name (OpenAI returns the resolved model, never an alias).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from backends.base import Choice, ChoiceDelta, Completion, RequestKind, StreamChunk, Usage


@dataclass(slots=True, frozen=True)
class ResponseStyle:
    """How a chat response is written for this request, beyond its content.

    ``legacy_functions``: the client used the deprecated ``functions`` API, so a
    call is written as ``message.function_call`` (finish reason ``function_call``).
    ``service_tier``: the tier that served the request, echoed when the client named one.
    """

    legacy_functions: bool = False
    service_tier: str | None = None


_PLAIN = ResponseStyle()


def usage_body(usage: Usage, cost_usd: Decimal | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if cost_usd is not None:
        # as OpenRouter/LiteLLM do; the exact decimal string is in x-maas-cost-usd
        body["cost"] = float(cost_usd)
    return body


def _chat_choice(choice: Choice, style: ResponseStyle) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
    finish = choice.finish_reason
    if choice.tool_calls:
        message["content"] = choice.text or None
        if style.legacy_functions:
            # the functions API made one call, written in place of tool_calls
            function = choice.tool_calls[0].get("function") or {}
            message["function_call"] = {"name": function.get("name"), "arguments": function.get("arguments", "")}
            finish = "function_call" if finish in ("tool_calls", "stop") else finish
        else:
            message["tool_calls"] = choice.tool_calls
    return {"index": choice.index, "message": message, "logprobs": choice.logprobs, "finish_reason": finish}


def completion_body(
    kind: RequestKind,
    response_id: str,
    created: int,
    model: str,
    completion: Completion,
    usage: Usage,
    cost_usd: Decimal | None,
    style: ResponseStyle = _PLAIN,
) -> dict[str, Any]:
    """``usage`` is what is billed: the engine's, or the estimate when it reported none."""
    if kind == "chat":
        choices = [_chat_choice(choice, style) for choice in completion.choices]
        obj = "chat.completion"
    else:
        choices = [
            {"index": c.index, "text": c.text, "logprobs": c.logprobs, "finish_reason": c.finish_reason}
            for c in completion.choices
        ]
        obj = "text_completion"
    body = {
        "id": response_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_body(usage, cost_usd),
        "system_fingerprint": None,
    }
    if style.service_tier is not None:
        body["service_tier"] = style.service_tier
    return body


def _tool_call_delta(call: dict[str, Any]) -> dict[str, Any]:
    """OpenAI opens a call with ``id``, ``type`` and ``function: {name, arguments: ""}``."""
    if "id" not in call:
        return call
    function = dict(call.get("function") or {})
    function.setdefault("arguments", "")
    return {**call, "type": call.get("type", "function"), "function": function}


class ChunkWriter:
    """Turns backend stream chunks into SSE ``data:`` frames for one response.

    Chat streams open each choice with a delta carrying the role, as OpenAI does;
    with ``include_usage`` every chunk has ``"usage": null`` and the usage comes in
    one last chunk whose ``choices`` is empty. Tool calls stream as OpenAI's
    ``delta.tool_calls`` (or ``delta.function_call`` for the deprecated functions API).
    """

    __slots__ = ("_head", "_include_usage", "_kind", "_object", "_opened", "_style")

    def __init__(
        self,
        kind: RequestKind,
        response_id: str,
        created: int,
        model: str,
        include_usage: bool,
        style: ResponseStyle = _PLAIN,
    ) -> None:
        self._kind = kind
        self._object = "chat.completion.chunk" if kind == "chat" else "text_completion"
        self._head: dict[str, Any] = {"id": response_id, "object": self._object, "created": created, "model": model}
        if style.service_tier is not None:
            self._head["service_tier"] = style.service_tier
        self._include_usage = include_usage
        self._opened: set[int] = set()
        self._style = style

    def _frame(self, choices: list[dict[str, Any]]) -> bytes:
        body = dict(self._head)
        body["choices"] = choices
        if self._kind == "chat":
            body["system_fingerprint"] = None
        if self._include_usage:
            body["usage"] = None
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def _chat_delta(self, delta: ChoiceDelta) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if delta.text:
            body["content"] = delta.text
        if delta.tool_calls:
            calls = [_tool_call_delta(call) for call in delta.tool_calls]
            if self._style.legacy_functions:
                function = calls[0].get("function") or {}
                body["function_call"] = {k: v for k, v in function.items() if k in ("name", "arguments")}
            else:
                body["tool_calls"] = calls
        return body

    def _finish(self, reason: str | None) -> str | None:
        if self._style.legacy_functions and reason == "tool_calls":
            return "function_call"
        return reason

    def frames(self, chunk: StreamChunk) -> list[bytes]:
        out: list[bytes] = []
        for delta in chunk.deltas:
            if self._kind == "chat":
                if delta.index not in self._opened:
                    self._opened.add(delta.index)
                    opening = {"role": "assistant", "content": "", "refusal": None}
                    out.append(
                        self._frame([{"index": delta.index, "delta": opening, "logprobs": None, "finish_reason": None}])
                    )
                if not delta.text and delta.finish_reason is None and not delta.tool_calls:
                    continue
                choice = {
                    "index": delta.index,
                    "delta": self._chat_delta(delta),
                    "logprobs": delta.logprobs,
                    "finish_reason": self._finish(delta.finish_reason),
                }
            else:
                if not delta.text and delta.finish_reason is None:
                    continue
                choice = {
                    "index": delta.index,
                    "text": delta.text,
                    "logprobs": delta.logprobs,
                    "finish_reason": delta.finish_reason,
                }
            out.append(self._frame([choice]))
        return out

    def usage_frame(self, usage: Usage, cost_usd: Decimal | None) -> bytes:
        body = dict(self._head)
        body["choices"] = []
        if self._kind == "chat":
            body["system_fingerprint"] = None
        body["usage"] = usage_body(usage, cost_usd)
        return b"data: " + orjson.dumps(body) + b"\n\n"


DONE_FRAME = b"data: [DONE]\n\n"


def error_frame(error_body: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(error_body) + b"\n\n"
