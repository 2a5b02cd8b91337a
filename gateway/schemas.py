"""Request bodies of the OpenAI API, validated with pydantic.

Fields OpenAI defines are typed here; anything else lands in ``model_extra`` and
is forwarded only to backends that understand it (vLLM's extras).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import APIError, bad_request


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Sampling(_Body):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    #: maas extension: per-request routing preference (extra_body={"routing": {...}})
    routing: dict[str, Any] | None = None

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
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    def token_limit(self) -> int | None:
        """``max_completion_tokens`` is the newer name of ``max_tokens``; it wins."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False
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
        elif item in {"str", "list[str]", "list[int]", "list[list[int]]", "list[dict[str,any]]"}:
            continue  # union branch names pydantic puts in the location
        elif "[" in str(item) or str(item).startswith(("function-", "literal")):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def validation_error(exc: ValidationError) -> APIError:
    """Turn pydantic's first complaint into a 400 whose ``param`` names the field."""
    err = exc.errors(include_url=False)[0]
    param = _param_path(tuple(err["loc"]))
    kind = err["type"]
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    message = err["msg"].removeprefix("Value error, ")
    return bad_request(f"Invalid value for '{param}': {message}.", param=param, code="invalid_value")


def parse_body(model: type[_Body], data: Any) -> Any:
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
