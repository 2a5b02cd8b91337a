"""Token accounting: a prompt bound that never falls below the engine's count, one counter per stream."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.base import GenerationRequest
from backends.sim_text import count_tokens, render_chat
from billing.tokens import INLINE_CHARS, PromptText, StreamMeter, TokenAccounting, TokenCounter
from gateway.config import ConfigError, parse_config
from gateway.prompt_text import prompt_text, tool_call_text

MODEL = "m"


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def accounting() -> TokenAccounting:
    return TokenAccounting()


def test_a_delivered_stream_counts_the_engines_token_numbers(counter):
    meter = StreamMeter(counter)
    for _ in range(7):
        meter.add("tok", 1)
    assert meter.count() == 7
    assert meter.counted is False


def test_text_without_token_numbers_is_counted_by_tokenizer_and_flagged(counter):
    meter = StreamMeter(counter)
    texts = ["The quick", " brown fox", " jumps over", " the lazy dog."]
    for text in texts:
        meter.add(text, None)
    assert meter.count() == counter.count_text("".join(texts))
    assert meter.counted is True
    meter.add("!", 1)
    assert meter.count() == counter.count_text("".join(texts)) + 1


def test_a_meter_without_tokenizer_falls_back_to_characters():
    meter = StreamMeter(None)
    meter.add("x" * 9, None)
    assert meter.count() == 3


def test_cl100k_counts_offline_and_never_refuses_special_token_text(counter):
    assert counter.name == "tiktoken:cl100k_base"
    assert counter.count_text("hello world") == 2
    assert counter.count_text("") == 0
    assert counter.count_text("<|endoftext|>") > 1


async def test_prompt_estimate_adds_the_per_message_overhead(accounting, counter):
    one = await accounting.prompt(MODEL, PromptText(("hi",), messages=1))
    two = await accounting.prompt(MODEL, PromptText(("hi", "hi"), messages=2))
    assert two.estimate - one.estimate == counter.count_text("hi") + 4


async def test_a_40000_character_prompt_is_bounded_by_its_bytes_not_a_quarter_of_them(accounting):
    # one token per character in the simulated double's tokenizer: the review's 400% overrun case
    text = "." * 40_000
    tokens = await accounting.prompt(MODEL, PromptText((text,), messages=1))
    engine = count_tokens(render_chat([{"role": "user", "content": text}]))
    assert engine > 40_000
    assert tokens.bound >= engine
    assert tokens.estimate < tokens.bound


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=6))
def test_the_bound_is_never_below_a_real_tokenizers_count_of_the_rendered_prompt(texts):
    accounting = TokenAccounting()
    counter = accounting.counter(MODEL)
    messages = [{"role": "user", "content": t} for t in texts]
    bound = asyncio.run(accounting.prompt(MODEL, PromptText(tuple(texts), messages=len(texts)))).bound
    assert bound >= count_tokens(render_chat(messages))
    assert bound >= counter.count_text("".join(texts))


async def test_huge_prompts_are_tokenized_off_the_event_loop(accounting, monkeypatch):
    counter = accounting.counter(MODEL)
    threads: list[bool] = []
    real = counter.count_texts

    def spy(texts):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(texts)

    monkeypatch.setattr(counter, "count_texts", spy)
    big = "word " * (INLINE_CHARS // 4)
    assert (await accounting.prompt(MODEL, PromptText((big,)))).estimate == real([big])
    await accounting.prompt(MODEL, PromptText(("small",)))
    assert threads == [False, True]


async def test_counters_are_loaded_off_the_event_loop_before_the_first_request(monkeypatch):
    built: list[tuple[str | None, bool]] = []

    class Recorded(TokenCounter):
        def __init__(self, tokenizer_path: str | None = None) -> None:
            built.append((tokenizer_path, threading.current_thread() is threading.main_thread()))
            super().__init__(None)  # cl100k: the test needs no model directory

    monkeypatch.setattr("billing.tokens.TokenCounter", Recorded)
    accounting = TokenAccounting({"own": "/models/own"})
    await accounting.load(["own", "a", "b"])
    assert sorted(built, key=str) == [("/models/own", False), (None, False)]  # one per tokenizer, in a worker
    before = list(built)
    await accounting.prompt("own", PromptText(("hello",)))
    await accounting.prompt("b", PromptText(("hello",)))
    assert built == before  # the first requests build nothing
    accounting.close()


async def test_a_tokenizer_that_does_not_load_falls_back_to_the_byte_bound_and_says_so(tmp_path, caplog):
    accounting = TokenAccounting({"broken": str(tmp_path)})  # a directory with no tokenizer in it
    await accounting.load(["broken"])  # the gateway starts: the model's replicas may be down, not it
    assert f"tokenizer {tmp_path} did not load" in caplog.text
    counter = accounting.counter("broken")
    assert not counter.exact and counter.name == "tiktoken:cl100k_base"
    text = "žluťoučký kůň " * 50
    bound = (await accounting.prompt("broken", PromptText((text,)))).bound
    assert bound >= len(text.encode())  # no exact count: bounded by its bytes
    accounting.close()


def test_a_tokenizer_that_is_not_a_directory_is_a_config_error_naming_the_field(tmp_path):
    model = {"name": "m", "tokenizer": str(tmp_path / "missing")}
    config = {"models": [model], "replicas": [{"id": "r", "model": "m", "backend": "simulated", "chip": "nvidia-l4"}]}
    with pytest.raises(ConfigError) as failure:
        parse_config(config, env={})
    assert f"models.0.tokenizer: Value error, no tokenizer directory at '{tmp_path / 'missing'}'" in str(failure.value)
    (tmp_path / "missing").mkdir()
    assert parse_config(config, env={}).models[0].tokenizer == str(tmp_path / "missing")


def test_every_field_that_becomes_prompt_tokens_is_counted():
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    request = GenerationRequest(
        "r", MODEL, "chat",
        messages=[
            {"role": "user", "name": "alice", "content": [{"type": "text", "text": "weather?"},
                                                          {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=tools,
    )
    text = prompt_text(request)
    assert text.messages == 3 and text.has_tools
    joined = "\n".join(text.texts)
    for expected in ("weather?", "alice", "get_weather", '{"city": "Paris"}', "call_1", "sunny", '"parameters"'):
        assert expected in joined
    assert "url" not in "".join(text.texts[:2])


def test_token_id_prompts_are_counted_exactly():
    text = prompt_text(GenerationRequest("r", MODEL, "completion", prompt=[1, 2, 3, 4, 5]))
    assert (text.texts, text.token_ids) == ((), 5)


def test_streamed_tool_call_deltas_are_delivered_text():
    assert tool_call_text([{"index": 0, "function": {"name": "f", "arguments": '{"a"'}}]) == 'f{"a"'
    assert tool_call_text(None) == ""
