"""Render completions and stream chunks exactly as OpenAI's API does."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from backends.base import Completion, RequestKind, StreamChunk, Usage


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


def completion_body(
    kind: RequestKind,
    response_id: str,
    created: int,
    model: str,
    completion: Completion,
    usage: Usage,
    cost_usd: Decimal | None,
) -> dict[str, Any]:
    """``usage`` is what is billed: the engine's, or the estimate when it reported none."""
    if kind == "chat":
        choices = []
        for choice in completion.choices:
            message: dict[str, Any] = {"role": "assistant", "content": choice.text}
            if choice.tool_calls:
                message["tool_calls"] = choice.tool_calls
                message["content"] = choice.text or None
            choices.append(
                {
                    "index": choice.index,
                    "message": message,
                    "logprobs": choice.logprobs,
                    "finish_reason": choice.finish_reason,
                }
            )
        obj = "chat.completion"
    else:
        choices = [
            {"index": c.index, "text": c.text, "logprobs": c.logprobs, "finish_reason": c.finish_reason}
            for c in completion.choices
        ]
        obj = "text_completion"
    return {
        "id": response_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_body(usage, cost_usd),
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Turns backend stream chunks into SSE ``data:`` frames for one response.

    Chat streams open each choice with a delta carrying the role, as OpenAI does;
    with ``include_usage`` every chunk has ``"usage": null`` and the usage comes in
    one last chunk whose ``choices`` is empty.
    """

    __slots__ = ("_kind", "_head", "_include_usage", "_opened", "_object")

    def __init__(self, kind: RequestKind, response_id: str, created: int, model: str, include_usage: bool) -> None:
        self._kind = kind
        self._object = "chat.completion.chunk" if kind == "chat" else "text_completion"
        self._head = {"id": response_id, "object": self._object, "created": created, "model": model}
        self._include_usage = include_usage
        self._opened: set[int] = set()

    def _frame(self, choices: list[dict[str, Any]]) -> bytes:
        body = dict(self._head)
        body["choices"] = choices
        if self._kind == "chat":
            body["system_fingerprint"] = None
        if self._include_usage:
            body["usage"] = None
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def frames(self, chunk: StreamChunk) -> list[bytes]:
        out: list[bytes] = []
        for delta in chunk.deltas:
            if self._kind == "chat":
                if delta.index not in self._opened:
                    self._opened.add(delta.index)
                    out.append(
                        self._frame(
                            [
                                {
                                    "index": delta.index,
                                    "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ]
                        )
                    )
                if not delta.text and delta.finish_reason is None and not delta.tool_calls:
                    continue
                body: dict[str, Any] = {}
                if delta.text:
                    body["content"] = delta.text
                if delta.tool_calls:
                    body["tool_calls"] = delta.tool_calls
                choice = {
                    "index": delta.index,
                    "delta": body,
                    "logprobs": delta.logprobs,
                    "finish_reason": delta.finish_reason,
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
