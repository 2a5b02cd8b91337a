"""What every standard chat/completions field does, per backend, and the one check the plan calls.

Each field of OpenAI's chat request has one behaviour:

- ``honoured``: passed to the engine, which acts on it (or to the upstream, untouched);
- ``recorded``: accepted and kept on the internal request (attribution, routing
  affinity), never generation input on the in-process engines;
- ``hint``: accepted; engines that implement it act on it, the others cannot, and
  doing without it leaves the answer the client asked for (a speed or style hint);
- ``capability``: honoured where a replica can, and refused with a precise 400
  where no replica of the model can, because ignoring it would change the answer.

``check_fields`` is what the request plan calls. ``docs/chat-fields.md`` is this
table for people; a test keeps the two and the schema in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from backends.base import Capabilities
from gateway import errors
from gateway.schemas import ChatCompletionRequest, CompletionRequest

Behaviour = Literal["honoured", "recorded", "hint", "capability"]
CapabilityName = Literal["tools", "custom_tools", "structured_outputs", "audio_output", "web_search", "moderation"]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field's behaviour; ``needs`` is the capability it takes when ``used`` says the request uses it."""

    behaviour: Behaviour
    needs: CapabilityName | None = None
    used: Callable[[ChatCompletionRequest], bool] | None = None
    why: str = ""


def _tools_used(body: ChatCompletionRequest) -> bool:
    if body.functions is not None:
        return body.function_call != "none"
    return any(t.type == "function" for t in body.tools or ()) and body.tool_choice != "none"


def _custom_tools_used(body: ChatCompletionRequest) -> bool:
    return any(t.type == "custom" for t in body.tools or ()) and body.tool_choice != "none"


def _json_format(body: ChatCompletionRequest) -> bool:
    return body.response_format is not None and body.response_format.type != "text"


def _audio(body: ChatCompletionRequest) -> bool:
    return body.audio is not None or "audio" in (body.modalities or ())


_TOOLS = FieldRule("capability", "tools", _tools_used, "the answer would be prose instead of a tool call")
_AUDIO = FieldRule("capability", "audio_output", _audio, "the answer would have no audio")

#: every field of OpenAI's chat request (openai-openapi CreateChatCompletionRequest)
CHAT_FIELDS: dict[str, FieldRule] = {
    "model": FieldRule("honoured"),
    "messages": FieldRule("honoured"),
    "max_tokens": FieldRule("honoured"),
    "max_completion_tokens": FieldRule("honoured"),
    "temperature": FieldRule("honoured"),
    "top_p": FieldRule("honoured"),
    "n": FieldRule("honoured"),
    "stop": FieldRule("honoured"),
    "seed": FieldRule("honoured"),
    "presence_penalty": FieldRule("honoured"),
    "frequency_penalty": FieldRule("honoured"),
    "logit_bias": FieldRule("honoured"),
    "logprobs": FieldRule("honoured"),
    "top_logprobs": FieldRule("honoured"),
    "stream": FieldRule("honoured"),
    "stream_options": FieldRule("honoured"),
    "tools": _TOOLS,
    "tool_choice": _TOOLS,
    "parallel_tool_calls": FieldRule("honoured"),
    "functions": _TOOLS,
    "function_call": _TOOLS,
    "response_format": FieldRule(
        "capability", "structured_outputs", _json_format, "the answer would not be guaranteed to parse as JSON"
    ),
    "user": FieldRule("recorded"),
    "safety_identifier": FieldRule("recorded"),
    "prompt_cache_key": FieldRule("recorded"),
    "metadata": FieldRule("recorded"),
    "store": FieldRule("recorded"),
    "service_tier": FieldRule("recorded"),
    "prompt_cache_retention": FieldRule("hint"),
    "prompt_cache_options": FieldRule("hint"),
    "prediction": FieldRule("hint"),
    "reasoning_effort": FieldRule("hint"),
    "verbosity": FieldRule("hint"),
    "modalities": _AUDIO,
    "audio": _AUDIO,
    "web_search_options": FieldRule(
        "capability", "web_search", lambda b: b.web_search_options is not None, "the answer would not be searched"
    ),
    "moderation": FieldRule(
        "capability", "moderation", lambda b: b.moderation is not None, "input and output would not be moderated"
    ),
}
#: the maas extension (routing preferences) is handled by the gateway itself
GATEWAY_FIELDS = frozenset({"routing"})
#: custom tools are a kind of tool with a capability of their own
_CUSTOM_TOOLS = FieldRule("capability", "custom_tools", _custom_tools_used, "the tool's input would not be free-form")


def required_capabilities(body: ChatCompletionRequest) -> dict[CapabilityName, str]:
    """The capabilities this request uses, each with the first field that uses it."""
    needed: dict[CapabilityName, str] = {}
    for name, rule in (*CHAT_FIELDS.items(), ("tools", _CUSTOM_TOOLS)):
        if rule.needs is not None and rule.needs not in needed and name in body.model_fields_set:
            assert rule.used is not None
            if rule.used(body):
                needed[rule.needs] = name
    return needed


def check_fields(
    body: ChatCompletionRequest | CompletionRequest, model: str, replicas: Sequence[tuple[str, Capabilities]]
) -> frozenset[str]:
    """Refuse (400) what no replica of ``model`` can honour; return the capabilities the request needs.

    ``replicas`` are the model's replicas as (id, capabilities). A replica qualifies
    when it has every capability the request needs; the caller routes only to
    qualifying replicas (``Capabilities.covers``). Fields outside the OpenAI schema
    need ``extra_params`` (today's rule for vLLM's extras).
    """
    needed: dict[str, str] = dict(required_capabilities(body)) if isinstance(body, ChatCompletionRequest) else {}
    extras = [name for name in (body.model_extra or {}) if name not in GATEWAY_FIELDS]
    if extras:
        needed["extra_params"] = extras[0]
    # a model with no replica now is the router's to answer (503), not a field's
    if not needed or not replicas or any(caps.covers(needed) for _, caps in replicas):
        return frozenset(needed)
    for capability, field in needed.items():
        lacking = [rid for rid, caps in replicas if not getattr(caps, capability)]
        if not lacking:
            continue
        if capability == "extra_params":
            raise errors.bad_request(
                f"Unrecognized request argument supplied: {field}. The replicas of '{model}' accept only "
                "OpenAI's standard parameters.",
                param=field,
                code="unsupported_parameter",
            )
        rule = _CUSTOM_TOOLS if capability == "custom_tools" else CHAT_FIELDS[field]
        raise errors.bad_request(
            f"'{field}' is not supported by the replicas of '{model}' ({', '.join(lacking)}): "
            f"{rule.why}, so it is refused rather than ignored.",
            param=field,
            code="unsupported_parameter",
        )
    # each capability exists somewhere, but no single replica has them all
    raise errors.bad_request(
        f"No replica of '{model}' supports {', '.join(repr(f) for f in needed.values())} together.",
        param=next(iter(needed.values())),
        code="unsupported_parameter",
    )
