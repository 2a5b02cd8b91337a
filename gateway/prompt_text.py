"""What of an internal request becomes prompt tokens, as plain text for billing's estimator.

Every field the engine renders into the prompt counts: message contents (text
parts), names, tool-call names and arguments, tool-call ids, and the tool
definitions (templates render their JSON schemas). Walks only the known shapes,
never recursing into arbitrary client JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from backends.base import GenerationRequest
from billing.tokens import PromptText

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def prompt_text(request: GenerationRequest) -> PromptText:
    """The prompt's texts and shape."""
    if request.kind != "chat":
        prompt = request.prompt
        if isinstance(prompt, list):
            return PromptText((), token_ids=len(prompt))
        return PromptText((prompt or "",))
    texts: list[str] = []
    messages = request.messages or ()
    for message in messages:
        _message_texts(message, texts)
    if request.tools:
        texts.append(orjson.dumps(request.tools).decode())
    return PromptText(tuple(texts), messages=len(messages), has_tools=bool(request.tools))


def _message_texts(message: Mapping[str, Any], out: list[str]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type", "text") in _TEXT_PART_TYPES:
                text = part.get("text")
                if isinstance(text, str):
                    out.append(text)
    for field in ("name", "tool_call_id"):
        value = message.get(field)
        if isinstance(value, str):
            out.append(value)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            for field in ("name", "arguments"):
                value = function.get(field)
                if isinstance(value, str):
                    out.append(value)


def tool_call_text(calls: list[dict[str, Any]] | None) -> str:
    """The generated text of streamed tool-call deltas (name and argument fragments)."""
    if not calls:
        return ""
    parts: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            parts.append(str(function.get("name") or ""))
            parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


def prefix_key(request: GenerationRequest, *, chars: int = 256) -> str | None:
    """The start of the prompt, so requests sharing a prefix can share a replica's KV cache."""
    if request.kind == "chat":
        texts: list[str] = []
        for message in (request.messages or ())[:2]:
            _message_texts(message, texts)
        text = "".join(texts)
    elif isinstance(request.prompt, list):
        text = ",".join(map(str, request.prompt[:64]))
    else:
        text = request.prompt or ""
    return text[:chars] or None
