"""Request bodies of the OpenAI API, validated with pydantic.

Every field OpenAI documents for chat/completions is typed here, with the ranges
its API reference gives (the parts live in :mod:`gateway.chat_schema`); what each
field does on each backend is :mod:`gateway.chat_fields`. Anything else lands in
``model_extra`` and is forwarded only to backends that understand it (vLLM's extras).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gateway.chat_schema import (
    MAX_MESSAGES,
    AudioOutput,
    ChatMessage,
    FunctionCallChoice,
    FunctionDefinition,
    Moderation,
    Prediction,
    PromptCacheOptions,
    ResponseFormat,
    StreamOptions,
    Tool,
    ToolChoice,
    WebSearchOptions,
    check_logit_bias,
    check_metadata,
    role_field_missing,
)
from gateway.errors import APIError, bad_request

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "ResponseFormat", "StreamOptions", "parse_body"]

_INT64 = 2**63
#: union branch names pydantic puts in an error's location
_UNION_BRANCHES = frozenset(
    {"str", "int", "float", "bool", "list[str]", "list[int]", "list[list[int]]", "list[dict[str,any]]"}
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Sampling(_Body):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-_INT64, lt=_INT64)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    #: maas extension: per-request routing preference (extra_body={"routing": {...}})
    routing: dict[str, Any] | None = None

    @field_validator("n", "stream", mode="before")
    @classmethod
    def _null_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        # OpenAI's reference makes these nullable; null means "the default"
        return cls.model_fields[info.field_name].default if value is None else value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias_range(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return check_logit_bias(value)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

    def stop_tuple(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``: every field of OpenAI's reference (deprecated ones included)."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @field_validator("logprobs", mode="before")
    @classmethod
    def _null_logprobs(cls, value: Any) -> Any:
        return False if value is None else value
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # deprecated by OpenAI in favour of tools / tool_choice; translated to them
    functions: list[FunctionDefinition] | None = Field(default=None, min_length=1, max_length=128)
    function_call: Literal["none", "auto"] | FunctionCallChoice | None = None
    # recorded: who the request is for, how to group it
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    safety_identifier: str | None = Field(default=None, max_length=128)
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: PromptCacheOptions | None = None
    # hints and output kinds
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOutput | None = None
    prediction: Prediction | None = None
    web_search_options: WebSearchOptions | None = None
    moderation: Moderation | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(value)

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise role_field_missing("logprobs", "'logprobs' must be true when 'top_logprobs' is set.")
        if self.functions is not None and self.tools is not None:
            raise role_field_missing("functions", "Send either 'tools' or the deprecated 'functions', not both.")
        if isinstance(self.tool_choice, ToolChoice) or self.tool_choice == "required":
            known = {tool.name for tool in self.tools or ()}
            if not known:
                raise role_field_missing("tool_choice", "'tool_choice' other than 'none' or 'auto' needs 'tools'.")
            names = self.tool_choice.allowed_names() if isinstance(self.tool_choice, ToolChoice) else []
            unknown = [name for name in names if name not in known]
            if unknown:
                raise role_field_missing("tool_choice", f"tool_choice names {unknown[0]!r}, which is not in 'tools'.")
        forced = self.function_call.name if isinstance(self.function_call, FunctionCallChoice) else None
        if forced is not None and forced not in {f.name for f in self.functions or ()}:
            raise role_field_missing("function_call", f"function_call names {forced!r}, which is not in 'functions'.")
        return self

    def token_limit(self) -> int | None:
        """``max_completion_tokens`` is the newer name of ``max_tokens``; it wins."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False

    @field_validator("echo", mode="before")
    @classmethod
    def _null_echo(cls, value: Any) -> Any:
        return False if value is None else value
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=16)

    def token_limit(self) -> int | None:
        # the legacy completions API defaults to 16 tokens
        return self.max_tokens if self.max_tokens is not None else 16

    def single_prompt(self) -> str | list[int]:
        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        if not prompt:
            raise bad_request("'prompt' must not be empty.", param="prompt")
        if all(isinstance(p, int) for p in prompt):
            return prompt  # type: ignore[return-value]
        if len(prompt) == 1:
            return prompt[0]  # type: ignore[return-value]
        raise bad_request(
            "Batched prompts (a list of several prompts) are not supported; send one request per prompt.",
            param="prompt",
            code="unsupported_value",
        )


def _param_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in _UNION_BRANCHES:
            continue  # union branch names pydantic puts in the location
        elif "[" in str(item) or str(item).startswith(("function-", "literal")) or str(item)[:1].isupper():
            continue  # validator and model-class branch names (fields are snake_case)
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def validation_error(exc: ValidationError) -> APIError:
    """Turn pydantic's first complaint into a 400 whose ``param`` names the field."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    param = _param_path(tuple(err["loc"]))
    # of a union's failed branches, the one that got furthest into the value says what is wrong
    for other in errors[1:]:
        deeper = _param_path(tuple(other["loc"]))
        if deeper.startswith(param) and len(deeper) > len(param):
            err, param = other, deeper
    kind = err["type"]
    if kind == "missing_for_kind":
        # a field one role or type needs (role_field_missing): point at the field itself
        field = err["ctx"]["field"]
        param = f"{param}.{field}" if param else field
        return bad_request(err["msg"], param=param, code="invalid_value")
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    message = err["msg"].removeprefix("Value error, ")
    return bad_request(f"Invalid value for '{param}': {message}.", param=param, code="invalid_value")


def parse_body(model: type[_Body], data: Any) -> Any:
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    messages = data.get("messages")
    if isinstance(messages, list) and len(messages) > MAX_MESSAGES:
        # refused before thousands of message objects are built and validated
        raise bad_request(
            f"Invalid value for 'messages': at most {MAX_MESSAGES} messages are allowed, not {len(messages)}.",
            param="messages",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
