"""The Responses, Messages and embeddings surfaces on the real in-process engines of the embedded default.

One gateway for the module, as `maas serve` runs it without a config: SmolLM2-135M on
vLLM's generate runner and all-MiniLM-L6-v2 on its pooling runner, both on this CPU.
Answers are greedy (temperature 0) and short; tools are held to their schemas by
guided decoding when a call is forced.
"""

from __future__ import annotations

import json
import math

import anthropic
import httpx
import jsonschema
import openai
import pytest

from backends.bundled_embedding import prepare_bundled_embedding
from tests.live_server import LiveServer
from tests.surfaces import MESSAGES_WEATHER, RESPONSES_WEATHER, WEATHER_SCHEMA, ledger_rows

pytestmark = pytest.mark.vllm

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"
CAPITAL = "What is the capital of France?"


@pytest.fixture(scope="module")
def oai(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="EMPTY", max_retries=0, timeout=120)


# ---- Responses ------------------------------------------------------------------------------


def test_a_response_answers_and_its_stream_is_the_same_answer_billed_the_same(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.create_key("vllm-responses"), max_retries=0,
                           timeout=120)
    whole = client.responses.create(model="default", input=CAPITAL, max_output_tokens=30, temperature=0)
    assert "Paris" in whole.output_text and whole.model == CHAT
    events = list(client.responses.create(model="default", input=CAPITAL, max_output_tokens=30, temperature=0,
                                          stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == whole.output_text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (whole.usage.input_tokens, whole.usage.output_tokens)
    plain, streamed = ledger_rows(server, "vllm-responses", expect=2)
    assert plain[3:6] == streamed[3:6] and (plain[2], streamed[2]) == (0, 1)


def test_a_forced_function_call_and_its_output_continue_by_previous_response_id(oai: openai.OpenAI) -> None:
    first = oai.responses.create(
        model=CHAT, input="What is the weather in Berlin?", tools=[RESPONSES_WEATHER],
        tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=60, temperature=0,
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), WEATHER_SCHEMA)
    second = oai.responses.create(
        model=CHAT, previous_response_id=first.id, tools=[RESPONSES_WEATHER], max_output_tokens=10, temperature=0,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21, "sky": "clear"}'}],
    )
    assert second.status in ("completed", "incomplete")
    assert second.usage.input_tokens > first.usage.input_tokens + 10
    assert oai.responses.retrieve(second.id).output_text == second.output_text
    oai.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)


def test_langchain_use_responses_api_on_the_engine(server: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=CHAT, base_url=server.url + "/v1", api_key="EMPTY", use_responses_api=True,
                     temperature=0, max_tokens=30)
    assert "Paris" in llm.invoke(CAPITAL).text


# ---- Messages --------------------------------------------------------------------------------


def test_a_message_and_its_stream_agree(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": CAPITAL}]
    # the current anthropic SDK sends sampling parameters through extra_body
    greedy = {"extra_body": {"temperature": 0}}
    whole = claude.messages.create(model="default", max_tokens=30, messages=messages, **greedy)
    assert "Paris" in whole.content[0].text and whole.stop_reason in ("end_turn", "max_tokens")
    with claude.messages.stream(model="default", max_tokens=30, messages=messages, **greedy) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == whole.content[0].text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (whole.usage.input_tokens, whole.usage.output_tokens)
    # top_k is vLLM's own: honoured by the engine, not refused
    assert claude.messages.create(model=CHAT, max_tokens=5, messages=messages, extra_body={"top_k": 1}).content


def test_forced_tool_use_validates_and_count_tokens_estimates_the_prompt(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "What is the weather in Berlin?"}]
    message = claude.messages.create(model=CHAT, max_tokens=60, messages=messages, extra_body={"temperature": 0},
                                     tools=[MESSAGES_WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    assert message.stop_reason == "tool_use"
    (use,) = [b for b in message.content if b.type == "tool_use"]
    jsonschema.validate(use.input, WEATHER_SCHEMA)
    counted = claude.messages.count_tokens(model=CHAT, messages=[{"role": "user", "content": CAPITAL}])
    engine = claude.messages.create(model=CHAT, max_tokens=1, messages=[{"role": "user", "content": CAPITAL}])
    # the gateway's estimate counts what the client sent (with the model's own tokenizer); the engine's count
    # also has what the chat template adds (SmolLM2's default system prompt), so the estimate is below it
    assert 0 < counted.input_tokens < engine.usage.input_tokens


# ---- embeddings ------------------------------------------------------------------------------


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_embeds_with_exact_usage_and_meaningful_similarity(oai: openai.OpenAI) -> None:
    from transformers import AutoTokenizer

    docs = ["The capital of France is Paris.", "Paris is France's capital city.", "I like to eat green apples."]
    raw = oai.embeddings.with_raw_response.create(model="default-embedding", input=docs, encoding_format="float")
    result = raw.parse()
    assert raw.headers["x-maas-chip"] == "cpu-avx2" and "x-maas-simulated" not in raw.headers
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
    tokenizer = AutoTokenizer.from_pretrained(prepare_bundled_embedding())
    assert result.usage.prompt_tokens == sum(len(tokenizer.encode(d)) for d in docs)
    # the SDK's default (base64) decodes to the same vectors
    assert oai.embeddings.create(model=EMBED, input=docs[0]).data[0].embedding == pytest.approx(vectors[0], abs=1e-6)


def test_minilm_refuses_dimensions_and_overlong_inputs(server: LiveServer) -> None:
    for body, param in (({"input": "x", "dimensions": 64}, "dimensions"), ({"input": "word " * 400}, "input")):
        response = httpx.post(server.url + "/v1/embeddings", json={"model": EMBED, **body}, timeout=60)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_langchain_openai_embeddings_on_the_engine(server: LiveServer) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(model=EMBED, base_url=server.url + "/v1", api_key="EMPTY",
                                  check_embedding_ctx_length=False)
    query, doc = embeddings.embed_query("capital of France"), embeddings.embed_documents(["Paris"])[0]
    assert len(query) == 384 and _cosine(query, doc) > 0.3
