"""Tool calling on the in-process engine, prompt side: how tools and tool-call history reach the model.

A chat template that renders ``tools`` itself (Qwen2.5, Hermes, Llama 3.1, ...) gets
them as Hugging Face templates expect: ``tools=[...]``, earlier calls with their
``arguments`` as objects, ``tool`` messages as they are.

A template that ignores tools (SmolLM2's, like many small models') gets the
**documented tool-prompt format** below instead, the Hermes format that vLLM's
``hermes`` tool parser reads back:

- a system turn (prepended to the client's first system message, if any) lists the
  tools as JSON inside ``<tools></tools>`` and asks for each call as
  ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``;
- an assistant message's earlier ``tool_calls`` are written in that same form after
  its text;
- a ``tool`` (or legacy ``function``) message becomes a ``user`` turn holding
  ``<tool_response>\\n{"name": ..., "content": ...}\\n</tool_response>``, consecutive
  results in one turn, so templates that insist on user/assistant alternation accept it.

Pure Python: nothing here imports vLLM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from backends.base import UpstreamRejected

_PROBE_TOOL = "maas_probe_tool_7c1e"
TOOL_PROMPT = """# Tools

You may call one or more functions to answer. The functions you can call are described \
in JSON Schema inside <tools></tools>:
<tools>
{tools}
</tools>

To call a function, answer with one JSON object per call, each inside <tool_call></tool_call> tags:
<tool_call>
{{"name": "<function name>", "arguments": <the arguments as a JSON object>}}
</tool_call>"""


def template_renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template shows the model the ``tools`` it is given."""
    tool = {"type": "function", "function": {"name": _PROBE_TOOL, "parameters": {"type": "object", "properties": {}}}}
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tools=[tool], tokenize=False, add_generation_prompt=True
        )
    except Exception:  # noqa: BLE001 - a template that fails on tools does not render them
        return False
    return _PROBE_TOOL in str(text)


def render_chat(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    native: bool,
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The prompt text for ``messages`` (text content already joined), ``tools`` shown when given."""
    kwargs = dict(template_kwargs or {})
    if native:
        conversation = [_native_message(m) for m in messages]
        if tools:
            kwargs["tools"] = list(tools)
    else:
        conversation = _documented_format(messages, tools)
    try:
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - jinja raises its own errors for malformed conversations
        raise UpstreamRejected(f"The chat template rejected these messages: {exc}", param="messages") from None


def _native_message(message: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(message)
    if item.get("tool_calls"):
        item["tool_calls"] = [_call_with_object_arguments(call) for call in item["tool_calls"]]
    return item


def _call_with_object_arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    # Hugging Face templates expect arguments as a mapping (they render it with tojson)
    function = dict(call.get("function") or {})
    function["arguments"] = _arguments_object(function.get("arguments"))
    return {**call, "function": function}


def _arguments_object(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        parsed = json.loads(arguments) if arguments else {}
    except (TypeError, ValueError):
        # history is the client's: a malformed call must not make the conversation unusable
        return {}
    return parsed if isinstance(parsed, dict) else {}


def tool_system_prompt(tools: Sequence[Mapping[str, Any]]) -> str:
    """The documented tool-prompt format's system text for these tools."""
    return TOOL_PROMPT.format(tools="\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools))


def _documented_format(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    names = {
        call.get("id"): (call.get("function") or {}).get("name") for m in messages for call in m.get("tool_calls") or ()
    }
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("tool", "function"):
            name = message.get("name") or names.get(message.get("tool_call_id"))
            result = json.dumps({"name": name, "content": message.get("content") or ""}, ensure_ascii=False)
            block = f"<tool_response>\n{result}\n</tool_response>"
            if out and out[-1].get("maas_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "maas_tool_results": True})
            continue
        item = {k: v for k, v in message.items() if k not in ("tool_calls", "function_call")}
        calls = list(message.get("tool_calls") or ())
        if message.get("function_call"):
            calls.append({"function": message["function_call"]})
        if calls:
            written = [
                "<tool_call>\n"
                + json.dumps(
                    {
                        "name": (c.get("function") or {}).get("name"),
                        "arguments": _arguments_object((c.get("function") or {}).get("arguments")),
                    },
                    ensure_ascii=False,
                )
                + "\n</tool_call>"
                for c in calls
            ]
            item["content"] = "\n".join(filter(None, [item.get("content") or "", *written]))
        out.append(item)
    for item in out:
        item.pop("maas_tool_results", None)
    if tools:
        prompt = tool_system_prompt(tools)
        if out and out[0].get("role") == "system":
            out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{prompt}".lstrip()}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out
