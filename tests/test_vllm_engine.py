"""The in-process vLLM backend against a real engine serving the bundled model (CPU).

One engine for the whole module (~40-80 s to start on 2 cores); the supervision
test kills it and waits for the restart, so it runs last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
import pytest_asyncio

from backends.base import Backend, GenerationRequest, ReplicaUnavailable, Sampling, UpstreamRejected
from backends.bundled_model import prepare_bundled_model
from gateway.config import EngineConfig

pytestmark = pytest.mark.vllm

SERVED = "smollm2-135m-instruct"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return prepare_bundled_model()


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest_asyncio.fixture(scope="module")
async def backend(model_dir: Path):
    from backends.vllm_engine import VllmEngineBackend

    config = EngineConfig(
        max_model_len=2048, max_num_seqs=32, kv_cache_gib=1, restart_backoff_s=0.2, restart_backoff_max_s=2.0
    )
    engine = VllmEngineBackend("vllm-test", SERVED, config, model_path=str(model_dir))
    await engine.start()
    yield engine
    await engine.close()


def chat(sampling: Sampling, messages=FRANCE, **fields) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"t-{time.monotonic_ns()}", model=SERVED, kind="chat", sampling=sampling, messages=messages, **fields
    )


def completion(prompt, sampling: Sampling, **fields) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"t-{time.monotonic_ns()}",
        model=SERVED,
        kind="completion",
        sampling=sampling,
        prompt=prompt,
        **fields,
    )


def templated_prompt_tokens(tokenizer, messages) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer.encode(text, add_special_tokens=False))


async def collect(backend, request):
    chunks = [chunk async for chunk in backend.stream(request)]
    return chunks


async def wait_until(condition, timeout_s: float, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(every_s)
    return condition()


async def test_backend_satisfies_the_protocol_and_is_healthy(backend):
    assert isinstance(backend, Backend) and backend.capabilities.extra_params
    assert await backend.health()
    assert backend.stats().running == 0
    assert isinstance(backend.engine_pid(), int)


async def test_chat_answers_coherently_with_exact_engine_usage(backend, tokenizer):
    result = await backend.generate(chat(Sampling(max_tokens=30, temperature=0, logprobs=True)))
    (choice,) = result.choices
    assert "Paris" in choice.text and choice.finish_reason == "stop"
    # prompt: the templated conversation, counted independently here
    assert result.usage.prompt_tokens == templated_prompt_tokens(tokenizer, FRANCE)
    # completion: one logprob entry per generated token id (EOS included)
    assert result.usage.completion_tokens == len(choice.logprobs["content"])
    assert not result.usage.estimated


async def test_stream_deltas_add_up_to_the_answer_and_its_usage(backend, tokenizer):
    plain = await backend.generate(chat(Sampling(max_tokens=30, temperature=0)))
    chunks = await collect(backend, chat(Sampling(max_tokens=30, temperature=0)))
    deltas = [d for c in chunks for d in c.deltas]
    assert "".join(d.text for d in deltas) == plain.choices[0].text
    assert [c.usage is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    usage = chunks[-1].usage
    assert sum(d.tokens for d in deltas) == usage.completion_tokens == plain.usage.completion_tokens
    assert usage.prompt_tokens == templated_prompt_tokens(tokenizer, FRANCE)
    assert deltas[-1].finish_reason == "stop"


async def test_max_tokens_cuts_the_answer_with_length(backend):
    result = await backend.generate(chat(Sampling(max_tokens=5, temperature=0), messages=STORY))
    assert result.choices[0].finish_reason == "length" and result.usage.completion_tokens == 5


async def test_stop_sequence_ends_the_choice_before_the_stop_text(backend):
    result = await backend.generate(completion("1, 2, 3, 4, 5,", Sampling(max_tokens=30, temperature=0, stop=(" 8",))))
    (choice,) = result.choices
    assert choice.finish_reason == "stop"
    assert choice.text.strip().startswith("6") and " 8" not in choice.text


async def test_n_2_gives_two_choices_and_bills_the_tokens_of_both(backend):
    request = chat(Sampling(max_tokens=8, temperature=1.0, n=2, seed=7, logprobs=True), messages=STORY)
    result = await backend.generate(request)
    assert [c.index for c in result.choices] == [0, 1]
    assert result.usage.completion_tokens == sum(len(c.logprobs["content"]) for c in result.choices) == 16
    chunks = await collect(backend, chat(Sampling(max_tokens=8, temperature=1.0, n=2), messages=STORY))
    per_choice = {0: 0, 1: 0}
    for c in chunks:
        for d in c.deltas:
            per_choice[d.index] += d.tokens
    assert per_choice == {0: 8, 1: 8} and chunks[-1].usage.completion_tokens == 16


async def test_a_seed_makes_sampling_repeatable(backend):
    def seeded(seed: int) -> GenerationRequest:
        return chat(Sampling(max_tokens=20, temperature=1.0, seed=seed), messages=STORY)

    first, again, *others = await asyncio.gather(*(backend.generate(seeded(s)) for s in (11, 11, 12, 13)))
    assert first.choices[0].text == again.choices[0].text
    assert {o.choices[0].text for o in others} != {first.choices[0].text}


async def test_completion_accepts_a_string_or_the_same_token_ids(backend, tokenizer):
    text = "The capital of France is"
    ids = tokenizer.encode(text)
    by_text = await backend.generate(completion(text, Sampling(max_tokens=6, temperature=0)))
    by_ids = await backend.generate(completion(ids, Sampling(max_tokens=6, temperature=0)))
    assert by_text.choices[0].text == by_ids.choices[0].text and "Paris" in by_text.choices[0].text
    assert by_text.usage.prompt_tokens == by_ids.usage.prompt_tokens == len(ids)


async def test_completion_echo_prepends_the_prompt(backend):
    result = await backend.generate(
        completion("Once upon a time", Sampling(max_tokens=4, temperature=0), extra={"echo": True})
    )
    assert result.choices[0].text.startswith("Once upon a time") and result.usage.completion_tokens == 4


async def test_vllm_extras_reach_the_sampler(backend):
    greedy = await backend.generate(chat(Sampling(max_tokens=12, temperature=0), messages=STORY))
    top1 = await backend.generate(chat(Sampling(max_tokens=12, temperature=1.5), messages=STORY, extra={"top_k": 1}))
    assert top1.choices[0].text == greedy.choices[0].text
    forced = await backend.generate(
        chat(Sampling(max_tokens=40, temperature=0), extra={"ignore_eos": True, "min_tokens": 40})
    )
    assert forced.usage.completion_tokens == 40


async def test_unknown_extra_is_refused_with_400_naming_it(backend):
    with pytest.raises(UpstreamRejected) as err:
        await backend.generate(chat(Sampling(max_tokens=2), extra={"best_of": 3}))
    assert err.value.status == 400 and err.value.param == "best_of"


async def test_invalid_sampling_is_refused_with_400_not_a_crash(backend):
    with pytest.raises(UpstreamRejected) as err:
        await backend.generate(chat(Sampling(max_tokens=2), extra={"repetition_penalty": -1.0}))
    assert err.value.status == 400 and "repetition_penalty" in err.value.message


async def test_prompt_beyond_the_context_window_is_refused_with_400(backend):
    with pytest.raises(UpstreamRejected) as err:
        await backend.generate(completion([42] * 2048, Sampling(max_tokens=2)))
    assert err.value.status == 400 and err.value.param == "prompt"
    assert "maximum context length is 2048 tokens" in err.value.message
    with pytest.raises(UpstreamRejected) as err:
        await backend.generate(chat(Sampling(max_tokens=2), messages=[{"role": "user", "content": "word " * 3000}]))
    assert err.value.param == "messages" and "maximum context length is 2048 tokens" in err.value.message


async def test_no_max_tokens_generates_up_to_the_context_window(backend, tokenizer):
    ids = tokenizer.encode("Once upon a time")
    long_prompt = ids * (2040 // len(ids))
    result = await backend.generate(completion(long_prompt, Sampling(temperature=0), extra={"ignore_eos": True}))
    assert result.usage.prompt_tokens + result.usage.completion_tokens == 2048
    assert result.choices[0].finish_reason == "length"


async def test_json_response_format_yields_json(backend):
    messages = [{"role": "user", "content": "Describe a cat as JSON with keys name and age."}]
    result = await backend.generate(
        chat(Sampling(max_tokens=80, temperature=0), messages=messages, response_format={"type": "json_object"})
    )
    assert isinstance(json.loads(result.choices[0].text), dict)


async def test_repeated_long_prefix_is_reported_as_cached_tokens(backend):
    system = {"role": "system", "content": "You are a meticulous assistant. " * 60}
    messages = [system, {"role": "user", "content": "Say hi."}]
    first = await backend.generate(chat(Sampling(max_tokens=2, temperature=0), messages=messages))
    second = await backend.generate(chat(Sampling(max_tokens=2, temperature=0), messages=messages))
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 300
    assert 0 < second.usage.cached_tokens <= second.usage.prompt_tokens


async def _engine_running_during_a_fresh_request(backend) -> int | None:
    """The engine's own running count while exactly one new request is open."""
    stream = backend.stream(chat(Sampling(max_tokens=6, temperature=0)))
    async with contextlib.aclosing(stream):
        await anext(stream)
        return backend.stats().running


async def test_closing_a_stream_early_aborts_the_request_in_the_engine(backend):
    stream = backend.stream(
        chat(Sampling(max_tokens=1500, temperature=0.7), messages=STORY, extra={"ignore_eos": True})
    )
    await anext(stream)
    await anext(stream)
    assert backend.stats().running == 1
    await stream.aclose()
    assert backend.stats().running == 0
    engine = backend.supervisor.current()
    assert await wait_until(lambda: engine.get_num_unfinished_requests() == 0, 5)
    # had the engine kept generating for nobody, it would now run two requests
    assert await _engine_running_during_a_fresh_request(backend) == 1


async def test_cancelling_the_consumer_task_aborts_the_request(backend):
    first_chunk = asyncio.Event()

    async def consume():
        request = chat(Sampling(max_tokens=1500, temperature=0.7), messages=STORY, extra={"ignore_eos": True})
        async for _ in backend.stream(request):
            first_chunk.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_chunk.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    engine = backend.supervisor.current()
    assert await wait_until(lambda: engine.get_num_unfinished_requests() == 0, 5)
    assert await _engine_running_during_a_fresh_request(backend) == 1


async def test_sixteen_concurrent_requests_are_batched_together(backend):
    requests = [
        chat(Sampling(max_tokens=32, temperature=0.8, seed=i), messages=STORY, extra={"ignore_eos": True})
        for i in range(16)
    ]
    tasks = [asyncio.create_task(backend.generate(r)) for r in requests]
    most_running = 0
    while not all(t.done() for t in tasks):
        most_running = max(most_running, backend.stats().running or 0)
        await asyncio.sleep(0.01)
    results = [t.result() for t in tasks]
    assert all(r.usage.completion_tokens == 32 for r in results)
    assert most_running >= 8


async def test_a_killed_engine_fails_in_flight_requests_then_restarts(backend):
    """kill -9 of the engine core: the card fell off the bus."""
    old_pid = backend.engine_pid()
    request = chat(Sampling(max_tokens=1500, temperature=0.7), messages=STORY, extra={"ignore_eos": True})
    stream = backend.stream(request)
    await anext(stream)
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(ReplicaUnavailable):
        async with asyncio.timeout(10):
            async for _ in stream:
                pass
    assert time.monotonic() - killed_at < 5
    assert await wait_until(lambda: backend.supervisor.state != "ready", 5)
    assert not await backend.health()
    with pytest.raises(ReplicaUnavailable) as err:
        await backend.generate(chat(Sampling(max_tokens=2)))
    assert err.value.retry_after is not None and err.value.retryable

    deadline = time.monotonic() + 240
    while not await backend.health():
        assert time.monotonic() < deadline, "engine did not come back"
        await asyncio.sleep(0.5)
    assert backend.engine_pid() not in (None, old_pid)
    result = await backend.generate(chat(Sampling(max_tokens=30, temperature=0)))
    assert "Paris" in result.choices[0].text


async def test_an_engine_that_cannot_start_raises_replica_unavailable(tmp_path: Path):
    from backends.vllm_engine import VllmEngineBackend

    broken = VllmEngineBackend("vllm-broken", SERVED, EngineConfig(), model_path=str(tmp_path))
    with pytest.raises(ReplicaUnavailable, match="failed to start"):
        await broken.start()
    assert not await broken.health()
    await broken.close()


async def test_close_ends_in_flight_requests_with_replica_unavailable(backend):
    """Runs last: it shuts the module's engine down."""
    stream = backend.stream(
        chat(Sampling(max_tokens=1500, temperature=0.7), messages=STORY, extra={"ignore_eos": True})
    )
    await anext(stream)
    closing = asyncio.create_task(backend.close())
    with pytest.raises(ReplicaUnavailable):
        async with asyncio.timeout(10):
            async for _ in stream:
                pass
    await closing
    assert not await backend.health() and backend.engine_pid() is None
    with pytest.raises(ReplicaUnavailable):
        await backend.generate(chat(Sampling(max_tokens=2)))
