"""Translating a :class:`GenerationRequest` into vLLM terms, and vLLM logprobs back
into OpenAI's shapes. Pure Python: nothing here imports vLLM, so it is tested alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.base import GenerationRequest, UpstreamRejected

#: extras (fields outside the OpenAI schema) passed through to vLLM's SamplingParams,
#: with the JSON type each must have
_EXTRA_TYPES: dict[str, str] = {
    "top_k": "int",
    "min_p": "number",
    "repetition_penalty": "number",
    "ignore_eos": "bool",
    "min_tokens": "int",
    "stop_token_ids": "int_list",
    "include_stop_str_in_output": "bool",
    "skip_special_tokens": "bool",
    "spaces_between_special_tokens": "bool",
    "bad_words": "str_list",
}
#: whitespace characters allowed in a row between JSON tokens of a structured output
MAX_JSON_WHITESPACE = 1
#: logprobs below this are reported as this (JSON has no -inf), as vLLM's server does
_MIN_LOGPROB = -9999.0


@dataclass(slots=True)
class SamplingPlan:
    """What the engine is asked to do: SamplingParams keyword arguments plus the
    few request features handled around the engine (echo, structured output)."""

    params: dict[str, Any]
    structured: dict[str, Any] | None = None
    echo: bool = False
    top_logprobs: int | None = None  # None: no logprobs asked
    extras_used: list[str] = field(default_factory=list)


def plan_sampling(request: GenerationRequest, *, prompt_tokens: int, max_model_len: int) -> SamplingPlan:
    """Map the request's sampling and extras onto SamplingParams arguments.

    ``max_tokens`` None means "up to the context window"; a larger one is capped
    there, as vLLM's own server does. Unknown extras are refused (400, ``param``).
    """
    s = request.sampling
    room = max_model_len - prompt_tokens
    max_tokens = room if s.max_tokens is None else min(s.max_tokens, room)
    params: dict[str, Any] = {
        "n": s.n,
        "max_tokens": max_tokens,
        "temperature": 1.0 if s.temperature is None else s.temperature,
        # OpenAI accepts top_p=0 (keep only the most likely token); vLLM wants > 0
        "top_p": 1.0 if s.top_p is None else max(s.top_p, 1e-9),
        "presence_penalty": s.presence_penalty or 0.0,
        "frequency_penalty": s.frequency_penalty or 0.0,
        "stop": list(s.stop),
        "seed": s.seed,
    }
    if s.logit_bias:
        params["logit_bias"] = dict(s.logit_bias)
    top_logprobs: int | None = None
    if s.logprobs:
        top_logprobs = s.top_logprobs or 0
        params["logprobs"] = top_logprobs
    plan = SamplingPlan(params=params, top_logprobs=top_logprobs)
    for name, value in request.extra.items():
        if name == "echo" and request.kind == "completion":
            plan.echo = bool(value)
            continue
        if name in _EXTRA_TYPES:
            params[name] = _checked(name, value, _EXTRA_TYPES[name])
        else:
            raise UpstreamRejected(
                f"Unrecognized request argument supplied: {name!r} "
                f"(this replica understands: {', '.join(sorted(_EXTRA_TYPES))}).",
                param=name,
            )
        plan.extras_used.append(name)
    if plan.echo and top_logprobs is not None:
        raise UpstreamRejected("'echo' together with 'logprobs' is not supported by this replica.", param="echo")
    plan.structured = structured_output(request.response_format)
    return plan


def structured_output(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``response_format`` as keyword arguments of vLLM's StructuredOutputsParams.

    The JSON is asked for as a structural tag holding its schema, because that form
    bounds the whitespace between JSON tokens (``max_whitespace_cnt``, one character)
    per request: unbounded, SmolLM2-135M spent its whole budget on ``"\\n\\n:\\n\\n"``
    and max_tokens cut the JSON. The output is the same JSON either way.
    """
    if not response_format or response_format.get("type") in (None, "text"):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        schema: Mapping[str, Any] = {"type": "object"}
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise UpstreamRejected(
                "response_format json_schema needs 'json_schema': {'name': ..., 'schema': {...}}.",
                param="response_format",
            )
    else:
        raise UpstreamRejected(f"response_format type {kind!r} is not supported.", param="response_format")
    return {"structural_tag": json_structural_tag(schema)}


def json_structural_tag(schema: Mapping[str, Any]) -> str:
    """A structural tag (xgrammar's format) for one JSON value of ``schema``, whitespace bounded."""
    json_format = {"type": "json_schema", "json_schema": dict(schema), "max_whitespace_cnt": MAX_JSON_WHITESPACE}
    return json.dumps({"type": "structural_tag", "format": json_format})


def chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages ready for a chat template: text content as one string.

    Content parts are joined with newlines (as vLLM's server does); ``developer``
    is the newer name of ``system``. Non-text parts are refused: the model reads text.
    """
    prepared: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        item = dict(message)
        if item.get("role") == "developer":
            item["role"] = "system"
        content = item.get("content")
        if content is None:
            item["content"] = ""
        elif isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                    raise UpstreamRejected(
                        f"Content part of type {kind!r} is not supported: this model reads text only.",
                        param=f"messages[{i}].content[{j}]",
                    )
                texts.append(part["text"])
            item["content"] = "\n".join(texts)
        elif not isinstance(content, str):
            raise UpstreamRejected(
                "Message content must be a string or a list of parts.", param=f"messages[{i}].content"
            )
        prepared.append(item)
    return prepared


def context_overflow(prompt_tokens: int, max_model_len: int, *, param: str) -> UpstreamRejected:
    """The error for a prompt that leaves no room to generate, in OpenAI's wording."""
    what = "messages" if param == "messages" else "prompt"
    return UpstreamRejected(
        f"This model's maximum context length is {max_model_len} tokens. However, your {what} "
        f"resulted in {prompt_tokens} tokens, which leaves no room for the completion. "
        f"Please reduce the length of the {what}.",
        param=param,
    )


def _checked(name: str, value: Any, kind: str) -> Any:
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "bool": isinstance(value, bool),
        "int_list": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        "str_list": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    if not ok:
        expected = {
            "int": "an integer",
            "number": "a number",
            "bool": "a boolean",
            "int_list": "a list of integers",
            "str_list": "a list of strings",
        }[kind]
        raise UpstreamRejected(f"Invalid value for {name!r}: expected {expected}.", param=name)
    return float(value) if kind == "number" else value


# ---- logprobs: vLLM's per-position {token_id: Logprob} -> OpenAI shapes ----------


def _entries(position: Mapping[int, Any], top: int) -> list[tuple[str, float]]:
    ranked = sorted((lp for lp in position.values() if lp.rank is not None and lp.rank <= top), key=lambda lp: lp.rank)
    return [(lp.decoded_token or "", max(lp.logprob, _MIN_LOGPROB)) for lp in ranked]


def _chosen(position: Mapping[int, Any], token_id: int) -> tuple[str, float]:
    lp = position.get(token_id)
    if lp is None:  # should not happen: vLLM always includes the sampled token
        return "", _MIN_LOGPROB
    return lp.decoded_token or "", max(lp.logprob, _MIN_LOGPROB)


def chat_logprobs(token_ids: Sequence[int], positions: Sequence[Mapping[int, Any] | None], top: int) -> dict[str, Any]:
    """Logprobs of generated tokens in the chat API's shape: ``{"content": [...]}``."""
    content = []
    for token_id, position in zip(token_ids, positions, strict=False):
        position = position or {}
        token, logprob = _chosen(position, token_id)
        content.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in _entries(position, top)
                ],
            }
        )
    return {"content": content}


def completion_logprobs(
    token_ids: Sequence[int], positions: Sequence[Mapping[int, Any] | None], top: int, text_offset: int
) -> dict[str, Any]:
    """Logprobs in the legacy completions shape; offsets start at ``text_offset``."""
    out: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    offset = text_offset
    for token_id, position in zip(token_ids, positions, strict=False):
        position = position or {}
        token, logprob = _chosen(position, token_id)
        out["tokens"].append(token)
        out["token_logprobs"].append(logprob)
        out["top_logprobs"].append(dict(_entries(position, top)))
        out["text_offset"].append(offset)
        offset += len(token)
    return out
