"""Writing an Anthropic Messages answer: the ``message`` object and its event stream.

The stream is Anthropic's sequence: ``message_start`` (usage so far: the prompt's
estimate), ``ping``, per content block ``content_block_start``,
``content_block_delta`` (``text_delta`` or ``input_json_delta``) and
``content_block_stop``, then ``message_delta`` with the stop reason and the
billed usage, and ``message_stop``; a failure after the first byte is an
``error`` event. ``usage.input_tokens`` is what was not read from the prompt
cache (``cache_read_input_tokens``), as Anthropic counts it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from backends.base import Completion, StreamChunk, Usage
from gateway.errors import APIError, anthropic_error_type


def stop_reason(finish: str | None, tool_calls: bool, stop_sequence: str | None) -> str:
    if tool_calls:
        return "tool_use"
    if finish == "length":
        return "max_tokens"
    return "stop_sequence" if stop_sequence is not None else "end_turn"


def usage_object(usage: Usage) -> dict[str, Any]:
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _tool_input(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        # the model wrote arguments that are not JSON: handed over as they are, never dropped
        return {"arguments": arguments}


class MessagesRenderer:
    """One Messages answer; ``prompt_estimate`` is the input usage announced before the engine's count."""

    __slots__ = ("_blocks", "_calls", "_finish", "_id", "_model", "_open", "_prompt_estimate", "_started", "_stop")

    def __init__(self, message_id: str, model: str, prompt_estimate: int) -> None:
        self._id = message_id
        self._model = model
        self._prompt_estimate = prompt_estimate
        self._started = False
        self._blocks = 0
        self._open: str | None = None  # "text" or "tool_use" while a block is open
        self._calls: set[int] = set()
        self._finish: str | None = None
        self._stop: str | None = None

    def _message(self, content: list[dict[str, Any]], reason: str | None, stop: str | None,
                 usage: dict[str, Any]) -> dict[str, Any]:
        return {"id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": content,
                "stop_reason": reason, "stop_sequence": stop, "usage": usage}

    def body(self, completion: Completion, usage: Usage, cost_usd: Decimal) -> Any:
        choice = completion.choices[0]
        content: list[dict[str, Any]] = []
        if choice.text:
            content.append({"type": "text", "text": choice.text})
        for call in choice.tool_calls or ():
            function = call.get("function") or {}
            content.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                            "input": _tool_input(function.get("arguments") or "")})
        reason = stop_reason(choice.finish_reason, bool(choice.tool_calls), choice.stop_sequence)
        return self._message(content, reason, choice.stop_sequence if reason == "stop_sequence" else None,
                             usage_object(usage))

    # ---- the stream ---------------------------------------------------------------------
    @staticmethod
    def _event(kind: str, payload: dict[str, Any]) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        usage = {"input_tokens": self._prompt_estimate, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        return [self._event("message_start", {"message": self._message([], None, None, usage)}),
                self._event("ping", {})]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        self._blocks += 1
        return [self._event("content_block_stop", {"index": self._blocks - 1})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self._open = kind
        return [*frames, self._event("content_block_start", {"index": self._blocks, "content_block": block})]

    def frames(self, chunk: StreamChunk) -> list[bytes]:
        frames = self._start()
        for delta in chunk.deltas:
            if delta.text:
                if self._open != "text":
                    frames += self._open_block("text", {"type": "text", "text": ""})
                frames.append(self._event("content_block_delta", {
                    "index": self._blocks, "delta": {"type": "text_delta", "text": delta.text}}))
            for call in delta.tool_calls or ():
                function = call.get("function") or {}
                if call.get("index", 0) not in self._calls:
                    self._calls.add(call.get("index", 0))
                    frames += self._open_block("tool_use", {"type": "tool_use", "id": call.get("id"),
                                                            "name": function.get("name"), "input": {}})
                if function.get("arguments"):
                    frames.append(self._event("content_block_delta", {
                        "index": self._blocks, "delta": {"type": "input_json_delta", "partial_json": function["arguments"]}}))
            if delta.finish_reason is not None:
                self._finish, self._stop = delta.finish_reason, delta.stop_sequence
        return frames

    def end(self, usage: Usage, cost_usd: Decimal) -> list[bytes]:
        reason = stop_reason(self._finish, bool(self._calls), self._stop)
        delta = {"stop_reason": reason, "stop_sequence": self._stop if reason == "stop_sequence" else None}
        return [*self._start(), *self._close(),
                self._event("message_delta", {"delta": delta, "usage": usage_object(usage)}),
                self._event("message_stop", {})]

    def error(self, error: APIError) -> list[bytes]:
        kind = anthropic_error_type(error.status)
        return [*self._start(), self._event("error", {"error": {"type": kind, "message": error.message}})]
