"""A Responses request -> the backends' internal chat request.

The conversation is the stored context of ``previous_response_id`` (its input and
output items), then this request's input items; ``instructions`` become the
system message and are never carried over from a previous response (as
OpenAI documents). Items map to chat messages one to one: ``function_call``
items join the assistant turn before them, ``function_call_output`` items are
``tool`` messages. Function tools, ``tool_choice`` and ``text.format`` take
their chat spellings, so every backend and the capability check see one shape.
"""

from __future__ import annotations

import re
from typing import Any

from backends.base import Attribution, GenerationRequest, Sampling
from gateway import errors
from gateway.chat_schema import NAME_PATTERN
from gateway.responses_schema import ResponsesBody

_NAME = re.compile(NAME_PATTERN)


def _content_text(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text") or p.get("refusal") or "" for p in parts)


def chat_messages(items: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for a conversation of normalised Responses items."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": _content_text(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if not last.get("content"):
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        # reasoning items are the model's own notes: not replayed to models that do not make them
    if not any(m["role"] != "system" for m in messages):
        raise errors.bad_request("'input' has no message for the model to answer.", param="input")
    return messages


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Responses function tools (flat) as chat tools (nested under ``function``)."""
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise errors.bad_request(
                f"Tools of type {tool.get('type')!r} are not supported by this gateway; only 'function' tools.",
                param=f"tools[{i}].type", code="unsupported_parameter",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise errors.bad_request(
                "A function tool needs a 'name' of letters, digits, '_' and '-' (at most 64).", param=f"tools[{i}].name"
            )
        function = {"name": name}
        for field in ("description", "parameters", "strict"):
            if tool.get(field) is not None:
                function[field] = tool[field]
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> Any:
    """``tool_choice`` in chat's spelling, its names checked against the tools."""
    if choice is None or choice in ("none", "auto"):
        return choice
    known = {t["function"]["name"] for t in tools or ()}
    if choice == "required":
        if not known:
            raise errors.bad_request("'tool_choice' 'required' needs 'tools'.", param="tool_choice")
        return choice
    if not isinstance(choice, dict):
        raise errors.bad_request("'tool_choice' must be none, auto, required or a tool object.", param="tool_choice")
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        if name not in known:
            raise errors.bad_request(f"'tool_choice' names {name!r}, which is not in 'tools'.", param="tool_choice")
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        names = [t.get("name") for t in choice.get("tools") or ()]
        if not names or any(n not in known for n in names) or choice.get("mode") not in ("auto", "required"):
            raise errors.bad_request(
                "'tool_choice' allowed_tools needs 'mode' (auto or required) and function tools from 'tools'.",
                param="tool_choice",
            )
        refs = [{"type": "function", "function": {"name": n}} for n in names]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice["mode"], "tools": refs}}
    raise errors.bad_request(
        f"'tool_choice' of type {kind!r} is not supported; name a function tool.", param="tool_choice",
        code="unsupported_parameter",
    )


def response_format(body: ResponsesBody) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format``."""
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(schema, dict):
            raise errors.bad_request(
                "'text.format' of type json_schema needs a 'name' and a 'schema' object.", param="text.format"
            )
        spec = {"name": name, "schema": schema}
        for field in ("description", "strict"):
            if fmt.get(field) is not None:
                spec[field] = fmt[field]
        return {"type": "json_schema", "json_schema": spec}
    raise errors.bad_request(
        "'text.format.type' must be text, json_object or json_schema.", param="text.format.type"
    )


def generation_request(
    body: ResponsesBody, conversation: list[dict[str, Any]], request_id: str, served_model: str
) -> GenerationRequest:
    """The internal request for ``conversation`` (stored context + this input, normalised)."""
    tools = chat_tools(body.tools)
    effort = (body.reasoning or {}).get("effort")
    return GenerationRequest(
        request_id=request_id,
        model=served_model,
        kind="chat",
        sampling=Sampling(max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p),
        messages=chat_messages(conversation, body.instructions),
        response_format=response_format(body),
        tools=tools,
        tool_choice=chat_tool_choice(body.tool_choice, tools),
        parallel_tool_calls=body.parallel_tool_calls is not False,
        reasoning_effort=effort if isinstance(effort, str) else None,
        attribution=Attribution(
            user=body.user,
            safety_identifier=body.safety_identifier,
            prompt_cache_key=body.prompt_cache_key,
            metadata=body.metadata,
            store=body.stores,
            service_tier=body.service_tier,
        ),
    )
