"""Metering: engine usage is the truth; a cut stream bills what was delivered."""

from __future__ import annotations

import asyncio

import pytest

from backends.base import Choice, ChoiceDelta, Completion, GenerationRequest, StreamChunk, Usage
from billing.meter import StreamMeter, usage_or_estimate
from billing.tokens import THREAD_THRESHOLD_CHARS, TokenCounter, estimate_chars


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def chunk(text: str = "", tokens: int | None = None, usage: Usage | None = None, index: int = 0) -> StreamChunk:
    return StreamChunk(deltas=[ChoiceDelta(index=index, text=text, tokens=tokens)], usage=usage)


def test_a_finished_stream_bills_the_engine_usage(counter):
    meter = StreamMeter(counter)
    meter.on_chunk(chunk("Hello", tokens=1))
    meter.on_chunk(chunk(" world", tokens=1))
    engine = Usage(prompt_tokens=12, completion_tokens=2, cached_tokens=4)
    meter.on_chunk(StreamChunk(deltas=[], usage=engine))
    assert meter.final_usage(prompt_tokens_estimate=999) == (engine, True)


def test_stream_cut_midway_bills_delivered_tokens(counter):
    meter = StreamMeter(counter)
    for _ in range(7):
        meter.on_chunk(chunk("tok", tokens=1))
    usage, complete = meter.final_usage(prompt_tokens_estimate=40)
    assert complete is False
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (40, 7, 0)


def test_cut_stream_without_token_counts_is_counted_by_tokenizer_and_flagged_estimated(counter):
    meter = StreamMeter(counter)
    texts = ["The quick", " brown fox", " jumps over", " the lazy dog."]
    for text in texts:
        meter.on_chunk(chunk(text))
    usage, complete = meter.final_usage(prompt_tokens_estimate=10)
    assert complete is False
    assert meter.counted is True
    assert usage.estimated is True
    assert usage.completion_tokens == sum(counter.count_text(t) for t in texts)


def test_every_choice_of_n_is_counted(counter):
    meter = StreamMeter(counter)
    meter.on_chunk(StreamChunk(deltas=[ChoiceDelta(0, "a", tokens=1), ChoiceDelta(1, "b", tokens=1)]))
    meter.on_chunk(chunk("c", tokens=1, index=1))
    assert meter.final_usage(prompt_tokens_estimate=0)[0].completion_tokens == 3


def test_tool_call_deltas_count_as_delivered(counter):
    meter = StreamMeter(counter)
    call = {"index": 0, "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    meter.on_chunk(StreamChunk(deltas=[ChoiceDelta(0, "", tool_calls=[call])]))
    assert meter.final_usage(prompt_tokens_estimate=0)[0].completion_tokens > 0


def test_meter_without_tokenizer_falls_back_to_characters():
    meter = StreamMeter(None)
    meter.on_chunk(chunk("x" * 9))
    assert meter.final_usage(prompt_tokens_estimate=0)[0].completion_tokens == 3


def test_a_stream_cut_before_any_chunk_bills_only_the_prompt_estimate(counter):
    usage, complete = StreamMeter(counter).final_usage(prompt_tokens_estimate=25)
    assert (usage.prompt_tokens, usage.completion_tokens, complete) == (25, 0, False)


async def test_usage_or_estimate_prefers_backend_usage(counter):
    engine = Usage(prompt_tokens=3, completion_tokens=4)
    request = GenerationRequest("r", "m", "completion", prompt="hi")
    completion = Completion(choices=[Choice(0, "some text", "stop")], usage=engine)
    assert await usage_or_estimate(counter, request, completion) is engine


async def test_usage_or_estimate_counts_when_the_backend_reports_none(counter):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    request = GenerationRequest("r", "m", "chat", messages=messages)
    completion = Completion(choices=[Choice(0, "Paris.", "stop"), Choice(1, "It is Paris.", "stop")], usage=None)
    usage = await usage_or_estimate(counter, request, completion)
    assert usage.estimated is True
    assert usage.prompt_tokens == counter.count_messages(messages)
    assert usage.completion_tokens == counter.count_text("Paris.") + counter.count_text("It is Paris.")


async def test_token_id_prompts_are_counted_exactly(counter):
    request = GenerationRequest("r", "m", "completion", prompt=[1, 2, 3, 4, 5])
    usage = await usage_or_estimate(counter, request, Completion(choices=[Choice(0, "", "stop")], usage=None))
    assert usage.prompt_tokens == 5


def test_token_counter_counts_offline_with_cl100k(counter):
    assert counter.name == "tiktoken:cl100k_base"
    assert counter.count_text("hello world") == 2
    assert counter.count_text("") == 0
    # special-token text in user input is counted as text, never refused
    assert counter.count_text("<|endoftext|>") > 1


def test_message_count_adds_a_per_message_overhead(counter):
    one = counter.count_messages([{"role": "user", "content": "hi"}])
    two = counter.count_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}])
    assert two - one == counter.count_text("hi") + 4
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]}]
    assert counter.count_messages(parts) == one


async def test_huge_texts_are_tokenized_off_the_event_loop(counter, monkeypatch):
    seen_threads = []
    real = counter.count_text

    def spy(text):
        import threading

        seen_threads.append(threading.current_thread() is threading.main_thread())
        return real(text)

    monkeypatch.setattr(counter, "count_text", spy)
    big = "word " * (THREAD_THRESHOLD_CHARS // 4)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    assert await counter.acount_text(big) == real(big)
    tick_task.cancel()
    assert seen_threads == [False]
    assert await counter.acount_text("small") == real("small")
    assert seen_threads == [False, True]


def test_character_estimate_is_cheap_and_rounds_up():
    assert estimate_chars("") == 0
    assert estimate_chars("abcde") == 2
    assert estimate_chars(4_000_000) == 1_000_000
