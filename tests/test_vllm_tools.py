"""Tool calling on the in-process engine without an engine: the prompt, vLLM's parser, finish reasons.

Uses the bundled model's tokenizer (its chat template ignores tools, so the
documented tool-prompt format applies) and vLLM's hermes parser, as the engine does.
"""

from __future__ import annotations

import json

import pytest

from backends.base import GenerationRequest, Sampling, UpstreamRejected
from backends.bundled_model import prepare_bundled_model
from backends.vllm_tools import render_chat, template_renders_tools
from tests.chat_cases import ASK_WEATHER, TIME, TOOLS, WEATHER

pytestmark = pytest.mark.vllm

CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'
HISTORY = [
    *ASK_WEATHER,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "21 C"},
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(prepare_bundled_model())


@pytest.fixture(scope="module")
def tool_calling(tokenizer):
    from backends.vllm_tool_calls import ToolCalling

    return ToolCalling("hermes", tokenizer, None)


def chat(**fields) -> GenerationRequest:
    return GenerationRequest("r", "m", "chat", Sampling(), messages=fields.pop("messages", ASK_WEATHER), **fields)


# ---- the prompt -------------------------------------------------------------------------


def test_a_template_without_tools_gets_the_documented_format(tokenizer) -> None:
    assert template_renders_tools(tokenizer) is False
    prompt = render_chat(tokenizer, ASK_WEATHER, TOOLS, native=False)
    assert prompt.startswith("<|im_start|>system\n# Tools")
    assert json.dumps(WEATHER) in prompt and "<tool_call>" in prompt
    assert prompt.endswith("What is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n")


def test_earlier_calls_and_tool_results_are_written_in_the_same_format(tokenizer) -> None:
    prompt = render_chat(tokenizer, [{"role": "system", "content": "Be brief."}, *HISTORY[1:]], TOOLS, native=False)
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
        in prompt
    )
    assert '<|im_start|>user\n<tool_response>\n{"name": "get_weather", "content": "21 C"}\n</tool_response>' in prompt


def test_a_template_that_renders_tools_gets_them_natively() -> None:
    class ToolTemplate:
        def apply_chat_template(self, conversation, tools=None, **kw):
            return json.dumps({"tools": tools, "conversation": conversation})

    tokenizer = ToolTemplate()
    assert template_renders_tools(tokenizer) is True
    rendered = json.loads(render_chat(tokenizer, HISTORY, [WEATHER], native=True))
    assert rendered["tools"] == [WEATHER]
    # templates expect earlier arguments as objects, and tool messages as they are
    assert rendered["conversation"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert rendered["conversation"][2] == HISTORY[2]


def test_a_template_error_is_a_400_on_messages() -> None:
    class Broken:
        def apply_chat_template(self, *a, **kw):
            raise ValueError("roles must alternate")

    with pytest.raises(UpstreamRejected) as err:
        render_chat(Broken(), ASK_WEATHER, None, native=False)
    assert err.value.param == "messages" and "roles must alternate" in err.value.message


# ---- vLLM's parser, finish reasons, parallel calls ------------------------------------------------


def test_forced_choices_become_schema_holding_structural_tags(tool_calling) -> None:
    for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
        tag = json.loads(tool_calling.session(chat(tools=TOOLS, tool_choice=choice)).structured["structural_tag"])
        contents = [t["content"] for t in tag["format"]["tags"]]
        assert tag["format"]["at_least_one"] is True
        assert {c["max_whitespace_cnt"] for c in contents} == {1}
        assert TIME["function"]["parameters"] in [c["json_schema"] for c in contents]


def test_auto_parses_a_call_after_text_and_finishes_with_tool_calls(tool_calling) -> None:
    session = tool_calling.session(chat(tools=TOOLS))
    content, calls = session.parse(0, "Let me check. " + CALL_TEXT, [])
    assert content == "Let me check. "
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
    assert session.finish_reason(0, "stop") == "tool_calls" and session.finish_reason(0, "length") == "length"
    plain = tool_calling.session(chat(tools=TOOLS))
    assert plain.parse(0, "It is sunny.", []) == ("It is sunny.", None)
    assert plain.finish_reason(0, "stop") == "stop"


def test_a_named_tool_finishes_with_stop_as_openai_does(tool_calling) -> None:
    session = tool_calling.session(
        chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    )
    _, calls = session.parse(0, CALL_TEXT, [])
    assert calls and session.finish_reason(0, "stop") == "stop"


def test_parallel_tool_calls_false_keeps_one_call(tool_calling) -> None:
    two = CALL_TEXT + '\n<tool_call>\n{"name": "get_time", "arguments": {"utc_offset": 1}}\n</tool_call>'
    assert len(tool_calling.session(chat(tools=TOOLS)).parse(0, two, [])[1]) == 2
    assert len(tool_calling.session(chat(tools=TOOLS, parallel_tool_calls=False)).parse(0, two, [])[1]) == 1


def test_streamed_text_then_call_deltas_reassemble(tool_calling, tokenizer) -> None:
    session = tool_calling.session(chat(tools=TOOLS))
    ids = tokenizer.encode("Sure. " + CALL_TEXT, add_special_tokens=False)
    text, arguments, heads = "", "", []
    for i, token in enumerate(ids):
        content, calls = session.delta(0, tokenizer.decode([token]), [token], [1], finished=i == len(ids) - 1)
        text += content
        for call in calls or ():
            heads += [call] if "id" in call else []
            arguments += call.get("function", {}).get("arguments", "")
    assert text == "Sure. "
    assert [h["function"]["name"] for h in heads] == ["get_weather"] and heads[0]["type"] == "function"
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert session.finish_reason(0, "stop") == "tool_calls"


def test_allowed_tools_narrow_what_the_grammar_allows(tool_calling) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_time"}}]},
    }
    session = tool_calling.session(chat(tools=TOOLS, tool_choice=choice))
    assert [t["function"]["name"] for t in session.tools] == ["get_time"]
    assert "get_weather" not in session.structured["structural_tag"]


def test_an_unusable_tool_parser_leaves_the_replica_serving_everything_but_tools(tokenizer) -> None:
    from backends.base import BackendError
    from backends.vllm_engine import VllmEngineBackend
    from gateway.config import EngineConfig

    class BuiltEngine:
        model_config = None

        def get_tokenizer(self):
            return tokenizer

    backend = VllmEngineBackend("cpu-0", "m", EngineConfig(tool_parser="no-such-parser"), model_path="unused")
    backend._set_up_tool_calling(BuiltEngine())
    with pytest.raises(BackendError) as err:
        backend._tools()
    assert "no-such-parser" in err.value.message and err.value.retryable
