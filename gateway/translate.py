"""HTTP schema -> the backends' internal request type."""

from __future__ import annotations

from backends.base import GenerationRequest, Sampling
from gateway.schemas import ChatCompletionRequest, CompletionRequest


def _sampling(body: ChatCompletionRequest | CompletionRequest, *, logprobs: bool, top_logprobs: int | None) -> Sampling:
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
    )


def chat_request(body: ChatCompletionRequest, request_id: str, served_model: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        model=served_model,
        kind="chat",
        sampling=_sampling(body, logprobs=body.logprobs, top_logprobs=body.top_logprobs),
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        response_format=body.response_format.model_dump() if body.response_format else None,
        tools=body.tools,
        tool_choice=body.tool_choice,
        user=body.user,
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
        user=body.user,
        extra=extra,
    )
