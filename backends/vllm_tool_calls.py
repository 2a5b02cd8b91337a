"""Tool calling on the in-process engine, output side: vLLM's own parsers and structured outputs.

One :class:`ToolCalling` per engine holds the parser vLLM composes for the configured
``engine.tool_parser`` (default ``hermes``, which reads the documented tool-prompt
format of :mod:`backends.vllm_tools`). For each request a :class:`ToolCallSession`:

- lets that parser adjust the request the way vLLM's server does: with the tool
  strict level at ``parameter``, ``tool_choice`` ``"required"`` or a named function
  becomes a structural tag (guided decoding) whose arguments must match each tool's
  JSON schema, so even a 135M model emits schema-valid calls; ``"auto"`` lets the
  model write text, and constrains a call once it opens one; ``parallel_tool_calls:
  false`` stops the grammar after the first call; a ``response_format`` is kept as
  the alternative to a call;
- parses the output (whole or streamed) into OpenAI tool calls with the same parser.

Finish reasons follow OpenAI (and vLLM's server): ``tool_calls`` when the model
called a tool, except ``stop`` for a named tool; ``length`` stays ``length``.
vLLM is imported lazily: building a :class:`ToolCalling` needs it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from backends.base import GenerationRequest, UpstreamRejected
from backends.vllm_sampling import MAX_JSON_WHITESPACE

#: structured-output arguments vLLM's request carries once a parser has adjusted it
_STRUCTURED_FIELDS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag", "disable_any_whitespace")


class ToolCalling:
    """The tool parser of one engine (built once, from the engine's tokenizer)."""

    def __init__(self, parser_name: str, tokenizer: Any, model_config: Any) -> None:
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.parser.parser_manager import ParserManager

        self._request_type = ChatCompletionRequest
        self.parser_name = parser_name
        self._tokenizer = tokenizer
        self._model_config = model_config
        self._parser_cls = ParserManager.get_parser(
            tool_parser_name=parser_name,
            enable_auto_tools=True,
            # every tool's arguments are held to its schema, as if each were strict
            tool_strict_level="parameter",
            tokenizer=tokenizer,
        )
        if self._parser_cls is None:
            raise ValueError(f"vLLM has no tool parser named {parser_name!r}")

    def session(self, request: GenerationRequest) -> ToolCallSession:
        """Adjust ``request`` for tool calling; the session then parses its output."""
        tools, tool_choice = callable_tools(request.tools or [], request.tool_choice)
        try:
            vllm_request = self._request_type(
                model=request.model,
                messages=request.messages or [],
                tools=tools,
                tool_choice=tool_choice,
                parallel_tool_calls=request.parallel_tool_calls,
                response_format=request.response_format,
            )
            parser = self._new_parser(vllm_request)
            vllm_request = parser.adjust_request(vllm_request)
        except Exception as exc:  # noqa: BLE001 - vLLM's validation errors are the client's to see
            raise UpstreamRejected(f"Invalid tool request: {exc}", param="tools") from None
        return ToolCallSession(self, vllm_request, tools, tool_choice)

    def _new_parser(self, vllm_request: Any) -> Any:
        return self._parser_cls(self._tokenizer, vllm_request.tools, model_config=self._model_config)


def callable_tools(tools: Sequence[Mapping[str, Any]], tool_choice: Any) -> tuple[list[dict[str, Any]], Any]:
    """The function tools the model may call, and the choice in the terms vLLM's request takes.

    ``allowed_tools`` narrows the tools to the allowed ones under its mode; custom
    tools are not callable here (the gateway refuses them for this backend).
    """
    functions = [dict(t) for t in tools if t.get("type") == "function"]
    if tool_choice is None:
        return functions, "auto"
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") == "allowed_tools":
        allowed = tool_choice.get("allowed_tools") or {}
        names = {(ref.get("function") or {}).get("name") or ref.get("name") for ref in allowed.get("tools") or ()}
        return [t for t in functions if t["function"]["name"] in names], allowed.get("mode", "auto")
    return functions, tool_choice


class ToolCallSession:
    """One request's tool calling: its structured-output constraint and its output parsers."""

    def __init__(self, owner: ToolCalling, vllm_request: Any, tools: list[dict[str, Any]], tool_choice: Any) -> None:
        self._owner = owner
        self._request = vllm_request
        self.tools = tools
        self.named = isinstance(tool_choice, Mapping)
        self._parallel = vllm_request.parallel_tool_calls is not False
        self._parsers: dict[int, Any] = {}
        self._called: set[int] = set()

    @property
    def structured(self) -> dict[str, Any] | None:
        """StructuredOutputsParams keyword arguments (a structural tag, or the response format)."""
        params = self._request.extract_structured_outputs()
        if params is None:
            return None
        kwargs = {name: getattr(params, name) for name in _STRUCTURED_FIELDS}
        kwargs = {name: value for name, value in kwargs.items() if value not in (None, False)}
        if "structural_tag" in kwargs:
            kwargs["structural_tag"] = _bounded_whitespace(kwargs["structural_tag"])
        return kwargs

    @property
    def skip_special_tokens(self) -> bool:
        # some models mark their tool-call tags special: the parser must see them
        return bool(self._request.skip_special_tokens)

    def _parser(self, index: int) -> Any:
        if index not in self._parsers:
            self._parsers[index] = self._owner._new_parser(self._request)
        return self._parsers[index]

    def parse(self, index: int, text: str, token_ids: Sequence[int]) -> tuple[str, list[dict[str, Any]] | None]:
        """A whole output as (content, tool calls)."""
        _, content, calls = self._parser(index).parse(
            text, self._request, enable_auto_tools=True, model_output_token_ids=list(token_ids)
        )
        if not calls:
            return content or "", None
        if not self._parallel:
            calls = calls[:1]
        self._called.add(index)
        return content or "", [_call(c) for c in calls]

    def delta(
        self, index: int, text: str, token_ids: Sequence[int], prompt_ids: list[int], *, finished: bool
    ) -> tuple[str, list[dict[str, Any]] | None]:
        """One streamed step as (content, tool-call deltas); a parser may hold text back until it knows."""
        message = self._parser(index).parse_delta(text, list(token_ids), self._request, prompt_ids, finished=finished)
        if message is None:
            return "", None
        deltas = [d.model_dump(exclude_none=True) for d in message.tool_calls or ()]
        if not self._parallel:
            deltas = [d for d in deltas if d.get("index", 0) == 0]
        if deltas:
            self._called.add(index)
        return message.content or "", deltas or None

    def finish_reason(self, index: int, engine_reason: str | None) -> str | None:
        """OpenAI's finish reason for a choice that ended with ``engine_reason``."""
        if engine_reason == "stop" and index in self._called and not self.named:
            return "tool_calls"
        return engine_reason


def _bounded_whitespace(structural_tag: str) -> str:
    """The tag with whitespace between JSON tokens bounded (``MAX_JSON_WHITESPACE``).

    Unbounded, a small model spends its token budget on newlines and indentation
    inside the arguments (seen with SmolLM2-135M: runs of "\n\n" until max_tokens
    cut the call); the arguments are the same JSON either way.
    """
    tag = json.loads(structural_tag)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "json_schema" and node.get("max_whitespace_cnt") is None:
                node["max_whitespace_cnt"] = MAX_JSON_WHITESPACE
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(tag)
    return json.dumps(tag)


def _call(call: Any) -> dict[str, Any]:
    from vllm.renderers.chat_utils import make_tool_call_id

    return {
        "id": call.id or make_tool_call_id(),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments or "{}"},
    }
