"""Anthropic's Messages API: the request body and its translation to the internal chat request.

Typed after Anthropic's API reference (``POST /v1/messages``): ``system`` as a
string or text blocks; messages of ``text``, ``tool_use`` and ``tool_result``
blocks; ``max_tokens`` (required), ``stop_sequences``, ``temperature``, ``top_p``,
``top_k`` (which the current SDK sends through ``extra_body`` only, older clients
directly), client ``tools`` and ``tool_choice`` (``auto``, ``any``, ``tool``,
``none``), ``metadata.user_id``, ``output_config`` (a JSON-schema ``format``: the
chat surface's structured outputs; ``effort``: a hint), ``cache_control`` (a hint:
vLLM caches prefixes by itself). A ``tool_result`` becomes a chat ``tool``
message, a ``tool_use`` an assistant tool call, so every backend and the
capability check see one shape. Images, documents, server tools and extended
thinking are refused with a 400 naming the field, never ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backends.base import Attribution, GenerationRequest, Sampling
from gateway import errors
from gateway.chat_schema import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageParam(_Closed):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class CountTokensBody(_Closed):
    """``POST /v1/messages/count_tokens``: what makes up the prompt."""

    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    #: maas extension: per-request routing preference
    routing: dict[str, Any] | None = None


class MessagesBody(CountTokensBody):
    """``POST /v1/messages``."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    stream: bool | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    output_config: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


def _text_of(blocks: Any, param: str) -> str:
    """A string, or text blocks joined."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise errors.bad_request(f"'{param}' must be a string or a list of text blocks.", param=param)
    texts = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise errors.bad_request(
                f"'{param}[{i}]' must be a text block here.", param=f"{param}[{i}]", code="unsupported_value"
            )
        texts.append(block["text"])
    return "\n".join(texts)


def _unsupported_block(kind: Any, param: str) -> errors.APIError:
    return errors.bad_request(
        f"Content blocks of type {kind!r} are not supported by this gateway; send text, tool_use and tool_result.",
        param=param, code="unsupported_value",
    )


def _message(message: MessageParam, index: int) -> list[dict[str, Any]]:
    """Chat messages for one Anthropic message (tool results first, as Anthropic orders them)."""
    param = f"messages[{index}].content"
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        where = f"{param}[{j}]"
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and message.role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise errors.bad_request("A tool_use block needs 'id' and 'name'.", param=where)
            arguments = json.dumps(block.get("input") or {})
            calls.append({"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}})
        elif kind == "tool_result" and message.role == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise errors.bad_request("A tool_result block needs 'tool_use_id'.", param=f"{where}.tool_use_id")
            content = _text_of(block.get("content") or "", f"{where}.content")
            if block.get("is_error"):
                content = f"Error: {content}"
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": content})
        elif kind in ("thinking", "redacted_thinking") and message.role == "assistant":
            continue  # the model's own notes: not replayed to models that do not make them
        else:
            raise _unsupported_block(kind, f"{where}.type")
    out = list(results)
    if message.role == "assistant":
        if texts or calls:
            turn: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
            if calls:
                turn["tool_calls"] = calls
            out.append(turn)
    elif texts:
        out.append({"role": "user", "content": "\n".join(texts)})
    return out


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            raise errors.bad_request(
                f"Server tools ({tool.get('type')!r}) are not supported by this gateway; define client tools.",
                param=f"tools[{i}].type", code="unsupported_parameter",
            )
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(schema, dict):
            raise errors.bad_request("A tool needs a 'name' (letters, digits, _ or -) and an 'input_schema'.",
                                     param=f"tools[{i}]")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: dict[str, Any] | None, tools: list[dict[str, Any]] | None) -> tuple[Any, bool]:
    """Chat's ``tool_choice`` and whether calls may be parallel."""
    if choice is None:
        return None, True
    parallel = not choice.get("disable_parallel_tool_use", False)
    kind = choice.get("type")
    if kind in ("auto", "none"):
        return kind, parallel
    if not tools:
        raise errors.bad_request(f"tool_choice '{kind}' needs 'tools'.", param="tool_choice")
    if kind == "any":
        return "required", parallel
    if kind == "tool":
        name = choice.get("name")
        if name not in {t["function"]["name"] for t in tools}:
            raise errors.bad_request(f"tool_choice names {name!r}, which is not in 'tools'.", param="tool_choice.name")
        return {"type": "function", "function": {"name": name}}, parallel
    raise errors.bad_request("tool_choice.type must be auto, any, tool or none.", param="tool_choice.type")


def _output_format(output_config: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """``output_config`` as chat's ``response_format`` and ``reasoning_effort``."""
    config = output_config or {}
    fmt, effort = config.get("format"), config.get("effort")
    if fmt is None:
        return None, effort if isinstance(effort, str) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise errors.bad_request("'output_config.format' must be {\"type\": \"json_schema\", \"schema\": {...}}.",
                                 param="output_config.format")
    spec = {"name": "output", "schema": fmt["schema"]}
    return {"type": "json_schema", "json_schema": spec}, effort if isinstance(effort, str) else None


def generation_request(body: CountTokensBody, request_id: str, served_model: str) -> GenerationRequest:
    """The internal chat request of a Messages (or count_tokens) body."""
    if body.thinking is not None and body.thinking.get("type") != "disabled":
        raise errors.bad_request("Extended thinking is not supported by this gateway.", param="thinking",
                                 code="unsupported_parameter")
    messages: list[dict[str, Any]] = []
    if body.system:
        messages.append({"role": "system", "content": _text_of(body.system, "system")})
    for index, message in enumerate(body.messages):
        messages += _message(message, index)
    tools = _tools(body.tools)
    tool_choice, parallel = _tool_choice(body.tool_choice, tools)
    full = body if isinstance(body, MessagesBody) else None
    extra = {"top_k": full.top_k} if full is not None and full.top_k is not None else {}
    user = (full.metadata or {}).get("user_id") if full is not None else None
    response_format, effort = _output_format(full.output_config if full is not None else None)
    return GenerationRequest(
        request_id=request_id,
        model=served_model,
        kind="chat",
        sampling=Sampling(
            max_tokens=full.max_tokens if full else None,
            temperature=full.temperature if full else None,
            top_p=full.top_p if full else None,
            stop=tuple(full.stop_sequences or ()) if full else (),
        ),
        messages=messages,
        response_format=response_format,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        reasoning_effort=effort,
        attribution=Attribution(user=user if isinstance(user, str) else None),
        extra=extra,
    )
