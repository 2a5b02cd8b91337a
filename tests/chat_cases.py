"""Shared material of the chat-surface tests: tools, schemas, a body with every standard field, checks."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import jsonschema
from pydantic import BaseModel, Field

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Berlin", "Madrid"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city.", "parameters": WEATHER_PARAMETERS},
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"utc_offset": {"type": "integer", "minimum": -12, "maximum": 14}},
            "required": ["utc_offset"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER, TIME]
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


class City(BaseModel):
    """A city, for structured outputs. Values are bounded, as a schema for a small model should
    be: unbounded, SmolLM2-135M can write digits until max_tokens cuts the JSON."""

    name: str = Field(max_length=30)
    country_code: str = Field(max_length=3)
    population_millions: int = Field(ge=0, le=100)


def city_schema() -> dict[str, Any]:
    """``City`` as a strict json_schema response format."""
    schema = City.model_json_schema()
    schema["additionalProperties"] = False
    return {"type": "json_schema", "json_schema": {"name": "City", "schema": schema, "strict": True}}


def every_standard_field(model: str, *, stream: bool = False) -> dict[str, Any]:
    """A body that sets every standard field to a value every backend must accept.

    Fields that only some backends can honour (audio output, web search, moderation,
    custom tools) are set to their harmless forms (``audio: null``, text modality).
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Name a planet."}], "name": "ada"},
        ],
        "max_completion_tokens": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "n": 1,
        "stop": ["\n\n\n"],
        "seed": 11,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "logit_bias": {"100": -1},
        "logprobs": True,
        "top_logprobs": 2,
        "tools": [WEATHER],
        "tool_choice": "none",
        "parallel_tool_calls": True,
        "response_format": {"type": "text"},
        "user": "user-1",
        "safety_identifier": "hash-of-user-1",
        "prompt_cache_key": "planets",
        "prompt_cache_retention": "24h",
        "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
        "metadata": {"project": "chat-surface"},
        "store": False,
        "service_tier": "auto",
        "reasoning_effort": "low",
        "verbosity": "low",
        "modalities": ["text"],
        "audio": None,
        "prediction": {"type": "content", "content": "Mars"},
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True, "include_obfuscation": False}
    return body


def tool_parameters(name: str) -> dict[str, Any]:
    return next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == name)


def assert_valid_call(call: Any, name: str | None = None) -> dict[str, Any]:
    """A tool call (SDK object or dict) whose arguments validate against its tool's schema; its arguments."""
    function = call["function"] if isinstance(call, dict) else call.function
    fn_name = function["name"] if isinstance(function, dict) else function.name
    raw = function["arguments"] if isinstance(function, dict) else function.arguments
    if name is not None:
        assert fn_name == name
    arguments = json.loads(raw)
    jsonschema.validate(arguments, tool_parameters(fn_name))
    return arguments


def reassemble(chunks: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Tool calls rebuilt from streamed SDK chunks (by index), and the finish reason."""
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": None, "function": {"name": "", "arguments": ""}})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["function"]["name"] += delta.function.name or ""
                    call["function"]["arguments"] += delta.function.arguments or ""
    return [calls[i] for i in sorted(calls)], finish


def assert_stream_matches_whole(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """One request sent whole and streamed: the streamed tool-call deltas reassemble into the
    same valid calls (same JSON), with the same finish reason, billed the same. The streamed calls."""
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    whole = raw.parse()
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    calls, finish = reassemble(chunks)
    assert finish == whole.choices[0].finish_reason
    whole_calls = whole.choices[0].message.tool_calls or []
    assert [c["function"]["name"] for c in calls] == [c.function.name for c in whole_calls]
    for streamed, call in zip(calls, whole_calls, strict=True):
        assert assert_valid_call(streamed) == assert_valid_call(call)
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(raw.headers["x-maas-cost-usd"])
    return calls


def assert_json_schema_output_and_parse(client: Any, **kwargs: Any) -> None:
    """A json_schema answer validates against the schema, and the SDK's ``parse`` fills a ``City``."""
    raw = client.chat.completions.create(response_format=city_schema(), **kwargs)
    jsonschema.validate(json.loads(raw.choices[0].message.content), city_schema()["json_schema"]["schema"])
    parsed = client.chat.completions.parse(response_format=City, **kwargs)
    assert isinstance(parsed.choices[0].message.parsed, City)
