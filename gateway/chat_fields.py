"""What every standard chat/completions field does, per backend, and the one check the plan calls.

Each field of OpenAI's chat request has one behaviour:

- ``honoured``: passed to the engine, which acts on it (or to the upstream, untouched);
- ``recorded``: accepted and kept on the internal request (attribution, routing
  affinity), never generation input on the in-process engines;
- ``hint``: accepted; engines that implement it act on it, the others cannot, and
  doing without it leaves the answer the client asked for (a speed or style hint);
- ``capability``: honoured where a replica can, and refused with a precise 400
  where no replica of the model can, because ignoring it would change the answer.

``check_fields`` is what the request plan calls, on the internal request (so every
API surface gets the same rule). ``docs/chat-fields.md`` is this table for people;
a test keeps the two and the schema in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from backends.base import Capabilities, GenerationRequest, capabilities_used
from gateway import errors

Behaviour = Literal["honoured", "recorded", "hint", "capability"]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field's behaviour; ``needs`` names the ``Capabilities`` field it takes when used."""

    behaviour: Behaviour
    needs: str | None = None


_HONOURED = FieldRule("honoured")
_RECORDED = FieldRule("recorded")
_HINT = FieldRule("hint")
_TOOLS = FieldRule("capability", "tools")
_AUDIO = FieldRule("capability", "audio_output")

#: every field of OpenAI's chat request (openai-openapi CreateChatCompletionRequest)
CHAT_FIELDS = MappingProxyType(
    {
        "model": _HONOURED,
        "messages": _HONOURED,
        "max_tokens": _HONOURED,
        "max_completion_tokens": _HONOURED,
        "temperature": _HONOURED,
        "top_p": _HONOURED,
        "n": _HONOURED,
        "stop": _HONOURED,
        "seed": _HONOURED,
        "presence_penalty": _HONOURED,
        "frequency_penalty": _HONOURED,
        "logit_bias": _HONOURED,
        "logprobs": _HONOURED,
        "top_logprobs": _HONOURED,
        "stream": _HONOURED,
        "stream_options": _HONOURED,
        "tools": _TOOLS,  # a custom tool takes custom_tools
        "tool_choice": _TOOLS,
        "parallel_tool_calls": _HONOURED,
        "functions": _TOOLS,
        "function_call": _TOOLS,
        "response_format": FieldRule("capability", "structured_outputs"),
        "user": _RECORDED,
        "safety_identifier": _RECORDED,
        "prompt_cache_key": _RECORDED,
        "metadata": _RECORDED,
        "store": _RECORDED,
        "service_tier": _RECORDED,
        "prompt_cache_retention": _HINT,
        "prompt_cache_options": _HINT,
        "prediction": _HINT,
        "reasoning_effort": _HINT,
        "verbosity": _HINT,
        "modalities": _AUDIO,
        "audio": _AUDIO,
        "web_search_options": FieldRule("capability", "web_search"),
        "moderation": FieldRule("capability", "moderation"),
    }
)
#: the maas extension (routing preferences) is handled by the gateway itself
GATEWAY_FIELDS = frozenset({"routing"})
#: what a client would get if a capability's field were ignored
_WHY = MappingProxyType(
    {
        "tools": "the answer would be prose instead of a tool call",
        "custom_tools": "the tool's input would not be free-form text",
        "structured_outputs": "the answer would not be guaranteed to parse as JSON",
        "audio_output": "the answer would have no audio",
        "web_search": "the answer would not be searched",
        "moderation": "input and output would not be moderated",
    }
)


def check_fields(
    request: GenerationRequest, model: str, replicas: Sequence[tuple[str, Capabilities]]
) -> frozenset[str]:
    """Refuse (400) what no replica of ``model`` can honour; return the capabilities the request needs.

    ``request`` is the internal request (any surface's); ``replicas`` are the model's
    replicas as (id, capabilities). A replica qualifies when it has every capability
    the request needs; the caller routes only to qualifying replicas
    (``Capabilities.covers``). Fields outside the OpenAI schema need ``extra_params``
    (today's rule for vLLM's extras).
    """
    needed = capabilities_used(request)
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
        raise errors.bad_request(
            f"'{field}' is not supported by the replicas of '{model}' ({', '.join(lacking)}): "
            f"{_WHY[capability]}, so it is refused rather than ignored.",
            param=field,
            code="unsupported_parameter",
        )
    # each capability exists somewhere, but no single replica has them all
    raise errors.bad_request(
        f"No replica of '{model}' supports {', '.join(repr(f) for f in needed.values())} together.",
        param=next(iter(needed.values())),
        code="unsupported_parameter",
    )
