"""HTTP schema -> the backends' internal request type, and the response style the body asks for."""

from __future__ import annotations

from typing import Any

from backends.base import Attribution, GenerationRequest, Sampling
from gateway.chat_schema import FunctionCallChoice, ToolChoice
from gateway.openai_format import ResponseStyle
from gateway.schemas import ChatCompletionRequest, CompletionRequest

#: standard chat fields no in-process engine acts on: sent untouched to OpenAI-speaking upstreams
_PASSTHROUGH = frozenset(
    {
        "max_completion_tokens",
        "verbosity",
        "web_search_options",
        "modalities",
        "audio",
        "prediction",
        "moderation",
        "prompt_cache_retention",
        "prompt_cache_options",
    }
)


def response_style(body: ChatCompletionRequest | CompletionRequest) -> ResponseStyle:
    """What the rendering needs from the body besides the completion itself."""
    if not isinstance(body, ChatCompletionRequest):
        return ResponseStyle()
    # every request is served at the standard tier: there is no flex or priority lane here
    return ResponseStyle(
        legacy_functions=body.functions is not None,
        service_tier="default" if body.service_tier is not None else None,
    )


def _sampling(body: ChatCompletionRequest | CompletionRequest, *, logprobs: bool, top_logprobs: int | None) -> Sampling:
    bias = body.logit_bias
    return Sampling(
        max_tokens=body.token_limit(),
        temperature=body.temperature,
        top_p=body.top_p,
        n=body.n,
        stop=body.stop_tuple(),
        seed=body.seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        logit_bias={int(token): float(value) for token, value in bias.items()} if bias else None,
    )


def _tools(body: ChatCompletionRequest) -> tuple[list[dict[str, Any]] | None, Any]:
    """``tools``/``tool_choice``, with the deprecated ``functions``/``function_call`` turned into them."""
    if body.functions is not None:
        tools = [{"type": "function", "function": f.model_dump(exclude_none=True)} for f in body.functions]
        choice = body.function_call
        if isinstance(choice, FunctionCallChoice):
            return tools, {"type": "function", "function": {"name": choice.name}}
        return tools, choice
    tools = [t.model_dump(exclude_none=True) for t in body.tools] if body.tools is not None else None
    choice = body.tool_choice
    if isinstance(choice, ToolChoice):
        return tools, choice.model_dump(exclude_none=True)
    return tools, choice


def chat_request(body: ChatCompletionRequest, request_id: str, served_model: str) -> GenerationRequest:
    tools, tool_choice = _tools(body)
    passthrough = {}
    for name in _PASSTHROUGH.intersection(body.model_fields_set):
        value = getattr(body, name)
        if value is not None:
            passthrough[name] = value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value
    return GenerationRequest(
        request_id=request_id,
        model=served_model,
        kind="chat",
        sampling=_sampling(body, logprobs=body.logprobs, top_logprobs=body.top_logprobs),
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        response_format=body.response_format.as_dict() if body.response_format else None,
        tools=tools,
        tool_choice=tool_choice,
        # the deprecated functions API made one call at a time
        parallel_tool_calls=body.functions is None and body.parallel_tool_calls is not False,
        reasoning_effort=body.reasoning_effort,
        attribution=Attribution(
            user=body.user,
            safety_identifier=body.safety_identifier,
            prompt_cache_key=body.prompt_cache_key,
            metadata=body.metadata,
            store=body.store,
            service_tier=body.service_tier,
        ),
        passthrough=passthrough,
        extra=dict(body.model_extra or {}),
    )


def completion_request(body: CompletionRequest, request_id: str, served_model: str) -> GenerationRequest:
    extra = dict(body.model_extra or {})
    # legacy-only fields travel as extras: only backends that know them accept them
    if body.echo:
        extra["echo"] = True
    if body.suffix is not None:
        extra["suffix"] = body.suffix
    if body.best_of is not None and body.best_of != body.n:
        extra["best_of"] = body.best_of
    return GenerationRequest(
        request_id=request_id,
        model=served_model,
        kind="completion",
        # the legacy API's `logprobs` is a count of alternatives, 0..5
        sampling=_sampling(body, logprobs=body.logprobs is not None, top_logprobs=body.logprobs),
        prompt=body.single_prompt(),
        attribution=Attribution(user=body.user),
        extra=extra,
    )
