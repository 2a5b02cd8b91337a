"""The chat request schema, the field-behaviour table, the capability check, translation and rendering."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from backends.base import Capabilities, Choice, ChoiceDelta, Completion, StreamChunk, Usage
from gateway.chat_fields import CHAT_FIELDS, GATEWAY_FIELDS, check_fields
from gateway.errors import APIError
from gateway.openai_format import ChunkWriter, ResponseStyle, completion_body
from gateway.schemas import ChatCompletionRequest, CompletionRequest, parse_body
from gateway.translate import chat_request, completion_request, response_style
from tests.chat_cases import TOOLS, WEATHER, every_standard_field

MODEL = "m"
HI = [{"role": "user", "content": "hi"}]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "chat-fields.md"
SIM = Capabilities(tools=True, structured_outputs=True)
UPSTREAM = Capabilities(True, True, True, True, True, True, True)


def chat(**fields) -> ChatCompletionRequest:
    return parse_body(ChatCompletionRequest, {"model": MODEL, "messages": HI, **fields})


def refused(**fields) -> APIError:
    with pytest.raises(APIError) as info:
        chat(**fields)
    assert info.value.status == 400
    return info.value


# ---- the schema -----------------------------------------------------------------------


def test_a_body_with_every_standard_field_parses() -> None:
    body = parse_body(ChatCompletionRequest, every_standard_field(MODEL, stream=True))
    assert body.model_extra == {}


def test_every_schema_field_has_a_behaviour_and_a_line_in_the_docs() -> None:
    fields = set(ChatCompletionRequest.model_fields) - GATEWAY_FIELDS
    assert fields == set(CHAT_FIELDS)
    docs = DOCS.read_text()
    missing = [name for name in CHAT_FIELDS if f"`{name}`" not in docs]
    assert not missing, f"docs/chat-fields.md does not describe {missing}"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 129}, "n"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"top_logprobs": 3}, "logprobs"),
        ({"logit_bias": {"12": 101}}, "logit_bias"),
        ({"logit_bias": {"x": 1}}, "logit_bias"),
        ({"seed": 2**63}, "seed"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"safety_identifier": "u" * 129}, "safety_identifier"),
        ({"service_tier": "gold"}, "service_tier"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"verbosity": "loud"}, "verbosity"),
        ({"modalities": ["video"]}, "modalities[0]"),
        ({"audio": {"format": "midi", "voice": "alloy"}}, "audio.format"),
        ({"prediction": {"type": "diff", "content": "x"}}, "prediction.type"),
        ({"web_search_options": {"search_context_size": "huge"}}, "web_search_options.search_context_size"),
        ({"prompt_cache_retention": "forever"}, "prompt_cache_retention"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"functions": [{"name": "f"}], "tools": [WEATHER]}, "functions"),
        ({"functions": [{"name": "f"}], "function_call": {"name": "g"}}, "function_call"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "assistant"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ],
)
def test_out_of_range_values_are_400_naming_the_field(fields: dict, param: str) -> None:
    assert refused(**fields).param == param


def test_null_means_the_default_for_nullable_fields() -> None:
    body = chat(n=None, stream=None, logprobs=None, temperature=None, stop=None)
    assert body.n == 1 and body.stream is False and body.logprobs is False


# ---- the capability check -----------------------------------------------------------


def internal(**fields):
    return chat_request(chat(**fields), "r1", MODEL)


def test_fields_every_backend_honours_need_no_capability() -> None:
    body = parse_body(ChatCompletionRequest, every_standard_field(MODEL))
    assert check_fields(chat_request(body, "r1", MODEL), MODEL, [("sim-0", Capabilities())]) == frozenset()


def test_a_field_no_replica_can_honour_is_refused_naming_it_and_the_replicas() -> None:
    replicas = [("sim-0", SIM), ("sim-1", SIM)]
    for fields, param in [
        ({"web_search_options": {}}, "web_search_options"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"format": "mp3", "voice": "alloy"}}, "audio"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"tools": [{"type": "custom", "custom": {"name": "sql"}}]}, "tools"),
    ]:
        with pytest.raises(APIError) as info:
            check_fields(internal(**fields), MODEL, replicas)
        assert (info.value.status, info.value.param, info.value.code) == (400, param, "unsupported_parameter")
        assert "sim-0, sim-1" in info.value.message and "refused rather than ignored" in info.value.message


def test_a_field_one_replica_can_honour_passes_and_names_the_capability_for_routing() -> None:
    needed = check_fields(internal(web_search_options={}), MODEL, [("sim-0", SIM), ("openai-0", UPSTREAM)])
    assert needed == {"web_search"}


def test_tools_need_a_tool_capable_replica_unless_tool_choice_is_none() -> None:
    plain = [("plain-0", Capabilities())]
    with pytest.raises(APIError) as info:
        check_fields(internal(tools=TOOLS), MODEL, plain)
    assert info.value.param == "tools"
    assert check_fields(internal(tools=TOOLS, tool_choice="none"), MODEL, plain) == frozenset()
    with pytest.raises(APIError):
        check_fields(internal(response_format={"type": "json_object"}), MODEL, plain)
    with pytest.raises(APIError):
        check_fields(internal(functions=[WEATHER["function"]]), MODEL, plain)


def test_non_standard_fields_keep_the_extras_rule() -> None:
    with pytest.raises(APIError) as info:
        check_fields(internal(top_k=5), MODEL, [("sim-0", SIM)])
    assert info.value.code == "unsupported_parameter" and info.value.param == "top_k"
    assert "Unrecognized request argument supplied: top_k" in info.value.message
    assert check_fields(internal(top_k=5), MODEL, [("vllm-0", Capabilities(extra_params=True))]) == {"extra_params"}
    legacy = parse_body(CompletionRequest, {"model": MODEL, "prompt": "x", "min_p": 0.1})
    with pytest.raises(APIError):
        check_fields(completion_request(legacy, "r2", MODEL), MODEL, [("sim-0", SIM)])


def test_a_model_with_no_replica_now_is_left_to_the_router() -> None:
    assert check_fields(internal(web_search_options={}), MODEL, []) == {"web_search"}


# ---- translation --------------------------------------------------------------------------


def test_translation_keeps_attribution_passthrough_and_tools() -> None:
    request = chat_request(parse_body(ChatCompletionRequest, every_standard_field(MODEL)), "r1", MODEL)
    assert request.attribution.safety_identifier == "hash-of-user-1"
    assert request.attribution.affinity_key == "planets"
    assert request.attribution.metadata == {"project": "chat-surface"} and request.attribution.store is False
    assert request.sampling.logit_bias == {100: -1.0} and request.sampling.top_logprobs == 2
    assert request.passthrough["verbosity"] == "low" and request.passthrough["prediction"]["content"] == "Mars"
    assert request.tools == [WEATHER] and request.tool_choice == "none" and not request.tool_calling


def test_deprecated_functions_become_tools_with_one_call_at_a_time() -> None:
    body = chat(functions=[WEATHER["function"]], function_call={"name": "get_weather"})
    request = chat_request(body, "r1", MODEL)
    assert request.tools == [WEATHER]
    assert request.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert request.parallel_tool_calls is False
    assert response_style(body).legacy_functions is True


# ---- rendering ------------------------------------------------------------------------------

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_tool_calls_render_with_null_content_and_the_service_tier_echoed() -> None:
    completion = Completion([Choice(0, "", "tool_calls", tool_calls=[CALL])], Usage(5, 3))
    body = completion_body(
        "chat", "chatcmpl-1", 0, MODEL, completion, Usage(5, 3), None, ResponseStyle(service_tier="default")
    )
    message = body["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "refusal": None, "tool_calls": [CALL]}
    assert body["service_tier"] == "default" and body["choices"][0]["finish_reason"] == "tool_calls"


def test_legacy_functions_render_as_function_call() -> None:
    completion = Completion([Choice(0, "", "tool_calls", tool_calls=[CALL])], Usage(5, 3))
    body = completion_body("chat", "c", 0, MODEL, completion, Usage(5, 3), None, ResponseStyle(legacy_functions=True))
    choice = body["choices"][0]
    assert choice["message"]["function_call"] == CALL["function"] and "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "function_call"


def _frames(writer: ChunkWriter, *chunks: StreamChunk) -> list[dict]:
    return [orjson.loads(frame[6:]) for chunk in chunks for frame in writer.frames(chunk)]


def test_streamed_tool_call_deltas_take_openais_shape() -> None:
    writer = ChunkWriter("chat", "c", 0, MODEL, False, ResponseStyle(service_tier="default"))
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather"}}
    frames = _frames(
        writer,
        StreamChunk([ChoiceDelta(0, tool_calls=[head], tokens=3)]),
        StreamChunk([ChoiceDelta(0, tool_calls=[{"index": 0, "function": {"arguments": "{}"}}], tokens=1)]),
        StreamChunk([ChoiceDelta(0, finish_reason="tool_calls", tokens=0)]),
    )
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert frames[1]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    ]
    assert frames[2]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"arguments": "{}"}}]
    assert frames[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(frame["service_tier"] == "default" for frame in frames)


def test_streamed_legacy_function_call_deltas() -> None:
    writer = ChunkWriter("chat", "c", 0, MODEL, False, ResponseStyle(legacy_functions=True))
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{"}}
    frames = _frames(writer, StreamChunk([ChoiceDelta(0, tool_calls=[head], finish_reason="tool_calls")]))
    assert frames[1]["choices"][0]["delta"] == {"function_call": {"name": "f", "arguments": "{"}}
    assert frames[1]["choices"][0]["finish_reason"] == "function_call"


def test_a_replica_refuses_what_it_would_otherwise_ignore() -> None:
    from backends.base import GenerationRequest, UpstreamRejected

    request = chat_request(chat(tools=[{"type": "custom", "custom": {"name": "sql"}}]), "r1", MODEL)
    with pytest.raises(UpstreamRejected) as info:
        SIM.refuse_unsupported(request)
    assert info.value.param == "tools"
    UPSTREAM.refuse_unsupported(request)
    web = chat_request(chat(web_search_options={}), "r2", MODEL)
    with pytest.raises(UpstreamRejected):
        SIM.refuse_unsupported(web)
    SIM.refuse_unsupported(GenerationRequest("r3", MODEL, "chat", messages=HI, tools=[WEATHER], tool_choice="auto"))
