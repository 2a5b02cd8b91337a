"""The vLLM backend's request translation and supervision rules, without an engine."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from backends.base import GenerationRequest, Sampling, UpstreamRejected
from backends.vllm_sampling import (
    chat_logprobs,
    chat_messages,
    completion_logprobs,
    context_overflow,
    plan_sampling,
    structured_output,
)
from backends.vllm_supervisor import EngineTelemetry, RestartBackoff


def _chat(sampling: Sampling | None = None, **fields) -> GenerationRequest:
    return GenerationRequest(
        request_id="r",
        model="m",
        kind="chat",
        sampling=sampling or Sampling(),
        messages=[{"role": "user", "content": "hi"}],
        **fields,
    )


def test_missing_max_tokens_means_up_to_the_context_window():
    plan = plan_sampling(_chat(), prompt_tokens=100, max_model_len=2048)
    assert plan.params["max_tokens"] == 1948


def test_max_tokens_beyond_the_window_is_capped_like_vllm_serve():
    plan = plan_sampling(_chat(Sampling(max_tokens=5000)), prompt_tokens=48, max_model_len=2048)
    assert plan.params["max_tokens"] == 2000


def test_openai_defaults_fill_unset_sampling_fields():
    params = plan_sampling(_chat(), prompt_tokens=1, max_model_len=10).params
    assert params["temperature"] == 1.0 and params["top_p"] == 1.0
    assert params["presence_penalty"] == 0.0 and params["frequency_penalty"] == 0.0
    assert params["n"] == 1 and params["stop"] == [] and params["seed"] is None


def test_top_p_zero_is_accepted_as_keep_only_the_top_token():
    params = plan_sampling(_chat(Sampling(top_p=0.0)), prompt_tokens=1, max_model_len=10).params
    assert 0 < params["top_p"] < 1e-6


def test_sampling_fields_map_one_to_one():
    s = Sampling(
        max_tokens=7,
        temperature=0.3,
        top_p=0.9,
        n=2,
        stop=("x", "y"),
        seed=5,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logprobs=True,
        top_logprobs=3,
    )
    plan = plan_sampling(_chat(s), prompt_tokens=1, max_model_len=100)
    assert plan.params == {
        "n": 2,
        "max_tokens": 7,
        "temperature": 0.3,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "stop": ["x", "y"],
        "seed": 5,
        "logprobs": 3,
    }
    assert plan.top_logprobs == 3


def test_logprobs_without_top_logprobs_asks_for_the_sampled_token_only():
    plan = plan_sampling(_chat(Sampling(logprobs=True)), prompt_tokens=1, max_model_len=100)
    assert plan.params["logprobs"] == 0 and plan.top_logprobs == 0


def test_vllm_extras_pass_through_to_sampling_params():
    extra = {
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "ignore_eos": True,
        "min_tokens": 3,
    }
    params = plan_sampling(_chat(extra=extra), prompt_tokens=1, max_model_len=100).params
    assert params["top_k"] == 20 and params["min_p"] == 0.05 and params["repetition_penalty"] == 1.1
    assert params["ignore_eos"] is True and params["min_tokens"] == 3


def test_logit_bias_is_a_standard_sampling_parameter():
    params = plan_sampling(_chat(Sampling(logit_bias={42: -100.0})), prompt_tokens=1, max_model_len=100).params
    assert params["logit_bias"] == {42: -100.0}


def test_unknown_extra_is_refused_naming_the_parameter():
    with pytest.raises(UpstreamRejected) as err:
        plan_sampling(_chat(extra={"frobnicate": 1}), prompt_tokens=1, max_model_len=100)
    assert err.value.status == 400 and err.value.param == "frobnicate"
    assert "frobnicate" in err.value.message


def test_extra_of_the_wrong_type_is_refused_naming_the_parameter():
    with pytest.raises(UpstreamRejected) as err:
        plan_sampling(_chat(extra={"top_k": "many"}), prompt_tokens=1, max_model_len=100)
    assert err.value.param == "top_k"
    with pytest.raises(UpstreamRejected) as err:
        plan_sampling(_chat(extra={"ignore_eos": 1}), prompt_tokens=1, max_model_len=100)
    assert err.value.param == "ignore_eos"


def test_echo_is_a_completion_feature_and_excludes_logprobs():
    completion = GenerationRequest("r", "m", "completion", Sampling(), prompt="x", extra={"echo": True})
    assert plan_sampling(completion, prompt_tokens=1, max_model_len=10).echo is True
    completion.sampling = Sampling(logprobs=True, top_logprobs=1)
    with pytest.raises(UpstreamRejected) as err:
        plan_sampling(completion, prompt_tokens=1, max_model_len=10)
    assert err.value.param == "echo"


def test_response_format_maps_to_a_whitespace_bounded_json_structural_tag():
    assert structured_output(None) is None
    assert structured_output({"type": "text"}) is None
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    for response_format, expected in [
        ({"type": "json_object"}, {"type": "object"}),
        ({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}, schema),
    ]:
        tag = json.loads(structured_output(response_format)["structural_tag"])
        assert tag == {
            "type": "structural_tag",
            "format": {"type": "json_schema", "json_schema": expected, "max_whitespace_cnt": 1},
        }
    with pytest.raises(UpstreamRejected) as err:
        structured_output({"type": "json_schema", "json_schema": {"name": "s"}})
    assert err.value.param == "response_format"


def test_chat_messages_join_text_parts_and_rename_developer():
    prepared = chat_messages(
        [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None},
        ]
    )
    assert prepared == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": ""},
    ]


def test_image_parts_are_refused_naming_the_part():
    with pytest.raises(UpstreamRejected) as err:
        chat_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    assert err.value.param == "messages[0].content[0]"


def test_context_overflow_reads_like_openai():
    err = context_overflow(3000, 2048, param="messages")
    assert err.status == 400 and err.param == "messages"
    assert "maximum context length is 2048 tokens" in err.message and "3000" in err.message


@dataclass
class _Logprob:
    logprob: float
    rank: int | None
    decoded_token: str | None


def test_chat_logprobs_have_openai_shape_with_ranked_alternatives():
    positions = [{7: _Logprob(-0.5, 2, " b"), 3: _Logprob(-0.1, 1, " a"), 9: _Logprob(-3.0, 3, " c")}]
    out = chat_logprobs([7], positions, top=2)
    assert out == {
        "content": [
            {
                "token": " b",
                "logprob": -0.5,
                "bytes": list(b" b"),
                "top_logprobs": [
                    {"token": " a", "logprob": -0.1, "bytes": list(b" a")},
                    {"token": " b", "logprob": -0.5, "bytes": list(b" b")},
                ],
            }
        ]
    }


def test_minus_infinity_logprob_is_reported_as_a_finite_floor():
    out = chat_logprobs([1], [{1: _Logprob(float("-inf"), 5, "x")}], top=0)
    assert out["content"][0]["logprob"] == -9999.0 and out["content"][0]["top_logprobs"] == []


def test_completion_logprobs_have_legacy_shape_and_running_offsets():
    positions = [{1: _Logprob(-0.2, 1, "He")}, {2: _Logprob(-0.3, 1, "llo")}]
    out = completion_logprobs([1, 2], positions, top=1, text_offset=4)
    assert out == {
        "tokens": ["He", "llo"],
        "token_logprobs": [-0.2, -0.3],
        "top_logprobs": [{"He": -0.2}, {"llo": -0.3}],
        "text_offset": [4, 6],
    }


def test_restart_backoff_doubles_up_to_the_cap():
    backoff = RestartBackoff(1.0, 8.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_crash_soon_after_restart_keeps_climbing_the_backoff_ladder():
    backoff = RestartBackoff(1.0, 30.0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.engine_died(uptime_s=5.0)  # crash-looping: no reset
    assert backoff.next_delay() == 4.0
    backoff.engine_died(uptime_s=600.0)  # a long healthy run earns a fresh start
    assert backoff.next_delay() == 1.0


@dataclass
class _SchedulerStats:
    num_running_reqs: int
    num_waiting_reqs: int
    kv_cache_usage: float
    num_skipped_waiting_reqs: int = 0


def test_stat_logger_feeds_the_latest_scheduler_stats_into_telemetry():
    telemetry = EngineTelemetry()
    logger = telemetry.logger_factory()(None, [0])
    logger.record(_SchedulerStats(5, 2, 0.25, num_skipped_waiting_reqs=1), None)
    logger.record(None, None)  # steps without scheduler stats keep the last ones
    stats = telemetry.snapshot()
    assert (stats.running, stats.waiting, stats.kv_cache_usage) == (5, 3, 0.25)
    telemetry.clear()
    assert telemetry.snapshot().running is None
