"""Tool calls and JSON answers of the simulated backend (a labelled TEST DOUBLE).

When a request lets the model call a tool or asks for a JSON format, the double never
answers prose:

- ``tool_choice`` ``"required"``, a named tool or ``allowed_tools`` with mode
  ``required``: it calls the tool(s) with arguments synthesized from their
  ``parameters`` schema; ``"auto"``: the same, unless the last message is a tool's
  result, which it answers (as JSON when a format is asked, else prose), so that
  agent loops end. With ``parallel_tool_calls`` and two or more tools to choose
  from, it calls two; otherwise one.
- ``response_format`` ``json_schema``: a value synthesized from the schema;
  ``json_object``: a small object.

Every token of the answer is one engine step, as for prose: tool-call tokens are the
argument JSON's tokens (the first carries the call's id and name). Finish reasons
follow OpenAI: ``tool_calls``, except ``stop`` for a named tool; ``length`` when
``max_tokens`` cuts the answer.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from backends.base import GenerationRequest, UpstreamRejected
from backends.sim_schema import SchemaSynthesizer
from backends.sim_text import Drafted, cap_and_stop, tokenize

_EMPTY_PARAMETERS = MappingProxyType({"type": "object", "properties": {}})


def draft_structured(request: GenerationRequest, rng: random.Random, *, max_tokens: int) -> Drafted | None:
    """The structured answer for one choice, or None when the answer is prose."""
    calls = _planned_calls(request, rng)
    if calls:
        return _tool_call_draft(calls, rng, max_tokens=max_tokens, named=_named(request.tool_choice) is not None)
    text = _json_text(request.response_format, rng)
    if text is None:
        return None
    tokens = tokenize(text)
    return cap_and_stop(tokens, natural=len(tokens), max_tokens=max_tokens, stop=request.sampling.stop)


def merge_tool_deltas(deltas: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Streamed tool-call deltas joined into complete calls, by ``index``."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        call = calls.setdefault(
            delta["index"], {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if delta.get("id"):
            call["id"] = delta["id"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def _named(choice: Any) -> str | None:
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return (choice.get("function") or {}).get("name")
    return None


def _planned_calls(request: GenerationRequest, rng: random.Random) -> list[Mapping[str, Any]]:
    """The function definitions this answer calls (none: answer in text)."""
    if not request.tool_calling:
        return []
    functions = {
        t["function"]["name"]: t["function"]
        for t in request.tools or ()
        if t.get("type") == "function" and t.get("function")
    }
    choice = request.tool_choice
    name = _named(choice)
    if name is not None:
        if name not in functions:
            raise UpstreamRejected(
                f"tool_choice names {name!r}, which is not among the function tools.", param="tool_choice"
            )
        return [functions[name]]
    mode = choice if isinstance(choice, str) else "auto"
    candidates = list(functions.values())
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        mode = allowed.get("mode", "auto")
        names = {((ref.get("function") or {}).get("name") or ref.get("name")) for ref in allowed.get("tools") or ()}
        candidates = [f for f in candidates if f["name"] in names]
    if not candidates:
        return []
    last = (request.messages or [{}])[-1]
    if mode != "required" and last.get("role") in ("tool", "function"):
        return []  # a tool's result came back: answer it
    count = 2 if request.parallel_tool_calls and len(candidates) >= 2 else 1
    return rng.sample(candidates, count)


def _tool_call_draft(calls: list[Mapping[str, Any]], rng: random.Random, *, max_tokens: int, named: bool) -> Drafted:
    tokens: list[str] = []
    tool_deltas: list[tuple[dict[str, Any], ...]] = []
    for index, function in enumerate(calls):
        arguments = json.dumps(SchemaSynthesizer(function.get("parameters") or _EMPTY_PARAMETERS, rng).value())
        call_id = "call_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
        for position, token in enumerate(tokenize(arguments)):
            tokens.append(token)
            if position == 0:
                head = {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": function["name"], "arguments": token},
                }
                tool_deltas.append((head,))
            else:
                tool_deltas.append(({"index": index, "function": {"arguments": token}},))
    natural = len(tokens)
    kept = min(natural, max_tokens)
    finish = "length" if kept < natural else ("stop" if named else "tool_calls")
    return Drafted(tuple(tokens[:kept]), ("",) * kept, finish, tuple(tool_deltas[:kept]))


def _json_text(response_format: Mapping[str, Any] | None, rng: random.Random) -> str | None:
    if not response_format or response_format.get("type") in (None, "text"):
        return None
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": SchemaSynthesizer({"type": "string"}, rng).value()})
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return json.dumps(SchemaSynthesizer(schema if isinstance(schema, Mapping) else {}, rng).value())
