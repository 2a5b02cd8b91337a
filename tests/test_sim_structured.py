"""The simulated double's structured answers: schema-valid values, tool calls, JSON formats."""

from __future__ import annotations

import json
import random
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from backends.base import GenerationRequest, Sampling
from backends.chips import CHIPS
from backends.sim_schema import SchemaSynthesizer
from backends.sim_structured import draft_structured
from backends.simulated import SimulatedBackend
from tests.chat_cases import ASK_WEATHER, TIME, TOOLS, WEATHER, assert_valid_call


class Address(BaseModel):
    street: str = Field(min_length=5, max_length=40)
    zip_code: str = Field(pattern=r"^[0-9]{5}$")


class Order(BaseModel):
    id: int = Field(gt=0, le=10**6)
    status: Literal["new", "paid", "shipped"]
    total: float = Field(ge=0, lt=1000, multiple_of=0.5)
    tags: list[str] = Field(min_length=1, max_length=3)
    ship_to: Address | None
    notes: list[Address] = Field(default_factory=list)


SCHEMAS = [
    Order.model_json_schema(),
    {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "ok": {"type": "boolean"}}},
    {"type": "array", "items": {"type": "integer", "minimum": 3, "maximum": 5}, "minItems": 3, "uniqueItems": True},
    {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}]},
    {"allOf": [{"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]}, {"required": ["b"]}]},
    {"type": ["string", "null"], "minLength": 12},
    {"oneOf": [{"type": "object", "properties": {"k": {"enum": ["x", "y"]}}, "required": ["k"]}]},
    {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("seed", range(5))
def test_synthesized_values_validate_against_their_schema(schema: dict, seed: int) -> None:
    jsonschema.validate(SchemaSynthesizer(schema, random.Random(seed)).value(), schema)


def chat(**fields) -> GenerationRequest:
    sampling = fields.pop("sampling", Sampling(max_tokens=200, seed=1))
    return GenerationRequest("r", "m", "chat", sampling, messages=fields.pop("messages", ASK_WEATHER), **fields)


def test_a_named_tool_is_called_with_valid_arguments_and_finish_stop() -> None:
    draft = draft_structured(
        chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}}),
        random.Random(1),
        max_tokens=200,
    )
    assert draft is not None and draft.finish_reason == "stop" and draft.text == ""
    head = draft.tool_deltas[0][0]
    assert head["id"].startswith("call_") and head["function"]["name"] == "get_time"
    arguments = "".join(d[0]["function"]["arguments"] for d in draft.tool_deltas)
    assert_valid_call({"function": {"name": "get_time", "arguments": arguments}})


def test_parallel_calls_only_when_allowed() -> None:
    parallel = draft_structured(chat(tools=TOOLS, tool_choice="required"), random.Random(1), max_tokens=200)
    single = draft_structured(
        chat(tools=TOOLS, tool_choice="required", parallel_tool_calls=False), random.Random(1), max_tokens=200
    )
    assert {d[0]["index"] for d in parallel.tool_deltas} == {0, 1} and parallel.finish_reason == "tool_calls"
    assert {d[0]["index"] for d in single.tool_deltas} == {0}


def test_allowed_tools_narrow_the_choice() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
    }
    draft = draft_structured(chat(tools=TOOLS, tool_choice=choice), random.Random(3), max_tokens=200)
    assert draft.tool_deltas[0][0]["function"]["name"] == "get_weather"


def test_auto_answers_a_tool_result_instead_of_calling_again() -> None:
    history = [
        *ASK_WEATHER,
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "21 C"},
    ]
    assert draft_structured(chat(tools=TOOLS, messages=history), random.Random(1), max_tokens=50) is None
    assert draft_structured(chat(tools=TOOLS, tool_choice="none"), random.Random(1), max_tokens=50) is None


def test_max_tokens_cuts_a_call_with_finish_length() -> None:
    draft = draft_structured(chat(tools=[WEATHER], tool_choice="required"), random.Random(1), max_tokens=3)
    assert len(draft.tokens) == 3 and draft.finish_reason == "length"


def test_json_formats_are_json() -> None:
    schema = Order.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "Order", "schema": schema, "strict": True}}
    draft = draft_structured(chat(response_format=fmt), random.Random(2), max_tokens=500)
    jsonschema.validate(json.loads(draft.text), schema)
    as_object = draft_structured(chat(response_format={"type": "json_object"}), random.Random(2), max_tokens=500)
    assert isinstance(json.loads(as_object.text), dict)


async def test_a_streamed_tool_call_matches_its_non_streamed_twin_token_for_token() -> None:
    async with SimulatedBackend(CHIPS["nvidia-h100"], "m", time_scale=0.001) as backend:
        request = chat(tools=[WEATHER, TIME], tool_choice="required")
        completion = await backend.generate(request)
        chunks = [chunk async for chunk in backend.stream(request)]
    deltas = [d for chunk in chunks for d in chunk.deltas]
    assert chunks[-1].usage == completion.usage and completion.usage.completion_tokens == len(deltas)
    streamed: dict[int, str] = {}
    for delta in deltas:
        for call in delta.tool_calls or ():
            streamed[call["index"]] = streamed.get(call["index"], "") + call["function"]["arguments"]
    calls = completion.choices[0].tool_calls
    assert [c["function"]["arguments"] for c in calls] == [streamed[i] for i in sorted(streamed)]
    for call in calls:
        assert_valid_call(call)
    assert completion.choices[0].finish_reason == deltas[-1].finish_reason == "tool_calls"
