"""The simulated backend: a labelled test double that batches like vLLM and bills exactly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest
import pytest_asyncio

from backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    ReplicaUnavailable,
    Sampling,
    UpstreamRejected,
    UpstreamTimeout,
)
from backends.chips import chip_profile
from backends.sim_text import count_tokens, render_chat, tokenize
from backends.simulated import SimulatedBackend

pytestmark = pytest.mark.asyncio

MODEL = "llama-3.1-8b-instruct"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three chips, please."},
]


def chat(request_id: str = "r", **sampling: object) -> GenerationRequest:
    return GenerationRequest(request_id, MODEL, "chat", messages=MESSAGES, sampling=Sampling(**sampling))


def completion(prompt: str | list[int], request_id: str = "r", **sampling: object) -> GenerationRequest:
    return GenerationRequest(request_id, MODEL, "completion", prompt=prompt, sampling=Sampling(**sampling))


@pytest_asyncio.fixture
async def backend():
    async with SimulatedBackend(chip_profile("nvidia-h100"), MODEL, time_scale=0.001) as b:
        yield b


async def poll_until(condition, *, attempts: int = 10_000) -> None:
    """Yield to the event loop until ``condition()`` holds (no wall-clock deadline)."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# -- labelling and contract ---------------------------------------------------------


async def test_backend_is_labelled_as_a_simulated_test_double(backend):
    assert backend.simulated is True
    assert backend.capabilities.extra_params is False and backend.capabilities.tools is True
    assert "simulated" in backend.label and "nvidia-h100" in backend.label
    assert "TEST DOUBLE" in SimulatedBackend.__doc__
    assert isinstance(backend, Backend)


async def test_health_follows_the_lifecycle():
    b = SimulatedBackend(chip_profile("ascend-910b"), MODEL, time_scale=0.001)
    assert await b.health() is False
    await b.start()
    assert await b.health() is True
    await b.close()
    assert await b.health() is False


async def test_request_before_start_is_refused_as_unavailable():
    b = SimulatedBackend(chip_profile("ascend-910b"), MODEL)
    with pytest.raises(ReplicaUnavailable):
        await b.generate(chat())


async def test_request_for_another_model_is_rejected_with_404(backend):
    with pytest.raises(UpstreamRejected) as info:
        await backend.generate(dataclasses.replace(chat(), model="other"))
    assert info.value.status == 404 and info.value.retryable is False


# -- usage ----------------------------------------------------------------------------


async def test_chat_usage_counts_the_templated_prompt_and_every_generated_token(backend):
    result = await backend.generate(chat())
    assert result.usage.prompt_tokens == count_tokens(render_chat(MESSAGES))
    # the template adds role markers: more tokens than the bare contents
    assert result.usage.prompt_tokens > sum(count_tokens(m["content"]) for m in MESSAGES)
    assert result.usage.completion_tokens == count_tokens(result.choices[0].text)
    assert result.usage.cached_tokens == 0
    assert result.usage.estimated is False


async def test_token_id_prompt_counts_one_token_per_id(backend):
    result = await backend.generate(completion([5, 17, 99, 3, 3], max_tokens=4))
    assert result.usage.prompt_tokens == 5
    assert result.usage.completion_tokens == 4


async def test_n_choices_bill_the_prompt_once_and_the_sum_of_their_tokens(backend):
    result = await backend.generate(chat(n=2))
    assert [c.index for c in result.choices] == [0, 1]
    assert result.choices[0].text != result.choices[1].text
    assert result.usage.prompt_tokens == count_tokens(render_chat(MESSAGES))
    assert result.usage.completion_tokens == sum(count_tokens(c.text) for c in result.choices)


async def test_stream_sends_one_token_per_delta_and_usage_only_on_the_last_chunk(backend):
    chunks = [chunk async for chunk in backend.stream(chat(n=2))]
    assert all(c.usage is None for c in chunks[:-1])
    usage = chunks[-1].usage
    deltas = [d for c in chunks for d in c.deltas]
    assert all(d.tokens == 1 for d in deltas)
    assert usage.completion_tokens == len(deltas)
    assert usage.prompt_tokens == count_tokens(render_chat(MESSAGES))
    finished = [d for d in deltas if d.finish_reason is not None]
    assert sorted(d.index for d in finished) == [0, 1]


async def test_stream_and_generate_give_the_same_text_and_usage(backend):
    result = await backend.generate(chat(seed=7, n=2))
    texts = {0: "", 1: ""}
    usage = None
    async for chunk in backend.stream(chat(seed=7, n=2)):
        for d in chunk.deltas:
            texts[d.index] += d.text
        usage = chunk.usage or usage
    assert [texts[0], texts[1]] == [c.text for c in result.choices]
    assert usage == result.usage


# -- deterministic text ---------------------------------------------------------------


async def test_same_request_with_same_seed_gives_the_same_text(backend):
    first = await backend.generate(chat(seed=42))
    second = await backend.generate(chat(seed=42))
    other = await backend.generate(chat(seed=43))
    assert first.choices[0].text == second.choices[0].text
    assert first.usage == second.usage
    assert other.choices[0].text != first.choices[0].text


async def test_backend_seed_changes_the_text():
    profile = chip_profile("nvidia-h100")
    async with SimulatedBackend(profile, MODEL, time_scale=0.001, seed=1) as one:
        a = await one.generate(chat())
    async with SimulatedBackend(profile, MODEL, time_scale=0.001, seed=2) as two:
        b = await two.generate(chat())
    assert a.choices[0].text != b.choices[0].text


async def test_without_max_tokens_the_answer_has_a_natural_length_and_stops(backend):
    for i in range(5):
        result = await backend.generate(completion(f"prompt number {i}"))
        assert 16 <= result.usage.completion_tokens <= 200
        assert result.choices[0].finish_reason == "stop"


async def test_max_tokens_caps_the_answer_with_finish_length(backend):
    full = await backend.generate(chat(seed=3))
    capped = await backend.generate(chat(seed=3, max_tokens=5))
    assert capped.usage.completion_tokens == 5
    assert capped.choices[0].finish_reason == "length"
    assert full.choices[0].text.startswith(capped.choices[0].text)
    assert capped.choices[0].text == "".join(tokenize(full.choices[0].text)[:5])


async def test_stop_string_cuts_the_text_before_it_and_finishes_stop(backend):
    full = (await backend.generate(chat(seed=5))).choices[0].text
    pieces = tokenize(full)
    stop = pieces[len(pieces) // 2]  # a word from the middle, with its leading space
    cut = full.find(stop)
    result = await backend.generate(chat(seed=5, stop=(stop, "never-appears")))
    choice = result.choices[0]
    assert choice.text == full[:cut]
    assert stop not in choice.text
    assert choice.finish_reason == "stop"
    # the token that completed the stop string was generated, so it is billed
    assert result.usage.completion_tokens == count_tokens(full[: cut + len(stop)])


async def test_stop_string_spanning_tokens_is_not_leaked_in_the_stream(backend):
    full = (await backend.generate(chat(seed=9))).choices[0].text
    pieces = tokenize(full)
    stop = pieces[4] + pieces[5]
    streamed = ""
    async for chunk in backend.stream(chat(seed=9, stop=(stop,))):
        streamed += "".join(d.text for d in chunk.deltas)
    assert streamed == full[: full.find(stop)]


async def test_chat_logprobs_have_openai_shape_one_entry_per_token(backend):
    result = await backend.generate(chat(max_tokens=6, logprobs=True, top_logprobs=3))
    content = result.choices[0].logprobs["content"]
    assert len(content) == 6
    for entry in content:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] <= 0
        assert entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["token"] == entry["token"]
    assert "".join(e["token"] for e in content) == result.choices[0].text
    again = await backend.generate(chat(max_tokens=6, logprobs=True, top_logprobs=3))
    assert again.choices[0].logprobs == result.choices[0].logprobs


async def test_completion_logprobs_have_the_legacy_shape(backend):
    result = await backend.generate(completion("Hello", max_tokens=4, logprobs=True, top_logprobs=2))
    lp = result.choices[0].logprobs
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 4
    assert lp["text_offset"][0] == 0
    assert all(len(top) <= 2 for top in lp["top_logprobs"])


async def test_no_logprobs_unless_asked(backend):
    result = await backend.generate(chat(max_tokens=3))
    assert result.choices[0].logprobs is None


# -- continuous batching ----------------------------------------------------------------


async def test_sixteen_concurrent_requests_share_the_batch():
    async with SimulatedBackend(chip_profile("cpu-xeon-amx"), MODEL, time_scale=0.01) as b:
        peak = 0
        tasks = [asyncio.create_task(b.generate(chat(f"r{i}", seed=i, max_tokens=16))) for i in range(16)]
        while not all(t.done() for t in tasks):
            peak = max(peak, b.stats().running)
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks)
    assert peak >= 8
    assert all(r.usage.completion_tokens == 16 for r in results)
    assert b.stats().running == 0 and b.stats().waiting == 0


async def test_sequences_beyond_max_batch_wait_in_fifo_order():
    small = dataclasses.replace(chip_profile("nvidia-h100"), max_batch=2)
    async with SimulatedBackend(small, MODEL, time_scale=0.001) as b:
        finished: list[int] = []

        async def one(i: int) -> None:
            await b.generate(completion(f"p{i}", f"r{i}", max_tokens=3))
            finished.append(i)

        tasks = [asyncio.create_task(one(i)) for i in range(5)]
        await poll_until(lambda: b.stats().waiting == 3)
        assert b.stats().running == 2
        await asyncio.gather(*tasks)
    assert finished == [0, 1, 2, 3, 4]


async def test_n_sequences_run_side_by_side_in_the_batch():
    async with SimulatedBackend(chip_profile("nvidia-h100"), MODEL, time_scale=0.001) as b:
        task = asyncio.create_task(b.generate(chat(n=3, max_tokens=20)))
        await poll_until(lambda: b.stats().running == 3)
        result = await task
    assert result.usage.completion_tokens == 60


async def test_step_lasts_decode_time_of_the_batch_plus_prefill_of_admitted_prompts():
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    profile = chip_profile("ascend-910b")
    async with SimulatedBackend(profile, MODEL, time_scale=0.5, sleep=record) as b:
        prompt = "word" + " word" * 98
        assert count_tokens(prompt) == 99
        await asyncio.gather(
            b.generate(completion(prompt, "a", max_tokens=3)),
            b.generate(completion(prompt, "b", max_tokens=3)),
        )
    first = profile.step_time_s(2) + profile.prefill_time_s(2 * 99)
    assert slept == pytest.approx([0.5 * first, 0.5 * profile.step_time_s(2), 0.5 * profile.step_time_s(2)])


async def test_scheduler_idles_when_nothing_runs():
    steps: list[float] = []

    async def record(seconds: float) -> None:
        steps.append(seconds)
        await asyncio.sleep(0)

    async with SimulatedBackend(chip_profile("nvidia-h100"), MODEL, sleep=record) as b:
        await b.generate(chat(max_tokens=4))
        for _ in range(50):
            await asyncio.sleep(0)
    assert len(steps) == 4


async def test_kv_cache_usage_counts_tokens_held_by_running_sequences():
    profile = dataclasses.replace(chip_profile("nvidia-h100"), max_batch=1)  # capacity 2048 tokens
    async with SimulatedBackend(profile, MODEL, time_scale=0.001) as b:
        assert b.stats().kv_cache_usage == 0
        stream = b.stream(completion("word" + " word" * 1023, max_tokens=50))
        await anext(stream)
        assert b.stats().kv_cache_usage == (1024 + 1) / 2048
        await stream.aclose()
        assert b.stats().kv_cache_usage == 0


# -- cancellation ----------------------------------------------------------------------------


async def test_closing_a_stream_early_frees_its_batch_slot_at_once(backend):
    stream = backend.stream(chat(n=2, max_tokens=100))
    await anext(stream)
    assert backend.stats().running == 2
    await stream.aclose()
    assert backend.stats().running == 0
    assert backend.stats().waiting == 0


async def test_cancelling_the_consumer_frees_its_batch_slot(backend):
    task = asyncio.create_task(backend.generate(chat(max_tokens=200)))
    await poll_until(lambda: backend.stats().running == 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert backend.stats().running == 0


async def test_a_closed_stream_does_not_disturb_its_neighbours(backend):
    kept = asyncio.create_task(backend.generate(chat("kept", seed=1, max_tokens=40)))
    cut = backend.stream(chat("cut", seed=2, max_tokens=40))
    await anext(cut)
    await cut.aclose()
    result = await kept
    assert result.usage.completion_tokens == 40


# -- fault injection ---------------------------------------------------------------------------


async def test_kill_fails_in_flight_and_new_requests_until_revived(backend):
    stream = backend.stream(chat(max_tokens=100))
    await anext(stream)
    backend.kill()
    assert await backend.health() is False
    assert backend.stats().running == 0
    with pytest.raises(ReplicaUnavailable):
        await anext(stream)
    with pytest.raises(ReplicaUnavailable):
        await backend.generate(chat())
    backend.revive()
    assert await backend.health() is True
    assert (await backend.generate(chat(max_tokens=3))).usage.completion_tokens == 3


async def test_kill_fails_requests_still_waiting_for_a_batch_slot():
    small = dataclasses.replace(chip_profile("nvidia-h100"), max_batch=1)
    async with SimulatedBackend(small, MODEL, time_scale=0.001) as b:
        tasks = [asyncio.create_task(b.generate(chat(f"r{i}", max_tokens=100))) for i in range(3)]
        await poll_until(lambda: b.stats().waiting == 2)
        b.kill()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ReplicaUnavailable) for r in results)


async def test_fail_next_raises_the_given_error_before_the_first_token_then_recovers(backend):
    backend.fail_next(2, UpstreamTimeout("slow upstream"))
    for _ in range(2):
        stream = backend.stream(chat())
        with pytest.raises(UpstreamTimeout):
            await anext(stream)
    assert (await backend.generate(chat(max_tokens=2))).usage.completion_tokens == 2
    assert await backend.health() is True


async def test_fail_next_defaults_to_replica_unavailable_and_accepts_a_class(backend):
    backend.fail_next()
    backend.fail_next(1, UpstreamTimeout)
    with pytest.raises(ReplicaUnavailable):
        await backend.generate(chat())
    with pytest.raises(UpstreamTimeout):
        await backend.generate(chat())
    await backend.generate(chat(max_tokens=1))


async def test_close_fails_in_flight_requests_and_refuses_new_ones():
    b = SimulatedBackend(chip_profile("kunlun-p800"), MODEL, time_scale=0.001)
    await b.start()
    stream = b.stream(chat(max_tokens=100))
    await anext(stream)
    await b.close()
    with pytest.raises(ReplicaUnavailable):
        await anext(stream)
    with pytest.raises(ReplicaUnavailable):
        await b.generate(chat())
    assert issubclass(ReplicaUnavailable, BackendError)


async def test_invalid_sampling_is_rejected_as_the_callers_fault(backend):
    with pytest.raises(UpstreamRejected):
        await backend.generate(chat(n=0))
    with pytest.raises(UpstreamRejected):
        await backend.generate(chat(max_tokens=0))
    with pytest.raises(UpstreamRejected):
        await backend.generate(GenerationRequest("r", MODEL, "completion"))


# -- options -----------------------------------------------------------------------------------


async def test_context_window_rejects_too_long_requests_and_caps_the_default_length():
    async with SimulatedBackend(chip_profile("nvidia-h100"), MODEL, time_scale=0.001, max_model_len=40) as b:
        prompt = "word" + " word" * 29  # 30 tokens
        with pytest.raises(UpstreamRejected) as info:
            await b.generate(completion(prompt, max_tokens=11))
        assert info.value.status == 400 and "maximum context length is 40" in info.value.message
        with pytest.raises(UpstreamRejected):
            await b.generate(completion("word" + " word" * 39))
        result = await b.generate(completion(prompt))
    assert result.usage.completion_tokens <= 10


async def test_prefix_cache_reports_cached_tokens_and_skips_their_prefill():
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    profile = chip_profile("cpu-xeon-amx")
    async with SimulatedBackend(profile, MODEL, prefix_caching=True, sleep=record) as b:
        shared = " ".join(f"w{i}" for i in range(64))  # 64 tokens = 4 blocks
        first = await b.generate(completion(shared + " first question", max_tokens=1))
        second = await b.generate(completion(shared + " second question", max_tokens=1))
        cold = await b.generate(completion("other" + shared, max_tokens=1))
    assert first.usage.cached_tokens == 0
    assert second.usage.cached_tokens == 64
    assert cold.usage.cached_tokens == 0
    assert second.usage.prompt_tokens == first.usage.prompt_tokens == 67
    assert slept[1] == pytest.approx(profile.step_time_s(1) + profile.prefill_time_s(67 - 64))


async def test_prefix_cache_is_off_by_default(backend):
    await backend.generate(chat(max_tokens=1))
    assert (await backend.generate(chat(max_tokens=1))).usage.cached_tokens == 0


async def test_jitter_varies_steps_within_bounds_reproducibly():
    async def run_once() -> list[float]:
        slept: list[float] = []

        async def record(seconds: float) -> None:
            slept.append(seconds)
            await asyncio.sleep(0)

        async with SimulatedBackend(chip_profile("nvidia-a100"), MODEL, jitter=0.1, seed=3, sleep=record) as b:
            await b.generate(completion([1], max_tokens=20))
        return slept[1:]  # after the prefill step

    steps = await run_once()
    base = chip_profile("nvidia-a100").step_time_s(1)
    assert all(0.9 * base <= s <= 1.1 * base for s in steps)
    assert len(set(steps)) > 1
    assert steps == await run_once()


async def test_backend_can_be_restarted_after_close_even_on_another_event_loop():
    b = SimulatedBackend(chip_profile("nvidia-l4"), MODEL, time_scale=0.001)
    await b.start()
    await b.generate(chat(max_tokens=2))
    await b.close()

    async def serve_elsewhere() -> list[int]:
        async with b:
            first = await b.generate(chat(max_tokens=3))
            for _ in range(10):  # let the scheduler go idle between the two requests
                await asyncio.sleep(0)
            second = await b.generate(chat(max_tokens=4))
            return [first.usage.completion_tokens, second.usage.completion_tokens]

    assert await asyncio.to_thread(asyncio.run, serve_elsewhere()) == [3, 4]
