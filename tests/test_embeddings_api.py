"""``/v1/embeddings`` through the official SDK and LangChain, on the simulated pool.

The simulated embedding replica is a labelled test double: deterministic vectors
from the text's words (``backends.sim_embedding``), not a model.
"""

from __future__ import annotations

import base64
import math
import struct

import httpx
import openai
import pytest

from backends.sim_embedding import SIM_EMBEDDING_DIMENSIONS, sim_embedding
from tests.live_server import LiveServer
from tests.surfaces import CHAT, EMBED, EMBED_PRICE, ledger_rows, nano, price_nano

DOCS = ["The capital of France is Paris.", "Paris is the capital of France.", "Bananas are yellow."]


@pytest.fixture(scope="module")
def key(surfaces_server: LiveServer) -> str:
    return surfaces_server.create_key("embeddings-acme")


@pytest.fixture
def client(surfaces_server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=surfaces_server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_float_vectors_come_in_input_order_with_usage_and_cost(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="default-embedding", input=DOCS, encoding_format="float")
    result = raw.parse()
    assert result.model == EMBED and [d.index for d in result.data] == [0, 1, 2]
    for doc, item in zip(DOCS, result.data, strict=True):
        assert item.embedding == pytest.approx(sim_embedding(doc, seed=0))
        assert math.isclose(sum(x * x for x in item.embedding), 1.0, rel_tol=1e-9)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0
    assert raw.headers["x-maas-simulated"] == "true"
    assert nano(raw.headers["x-maas-cost-usd"]) == price_nano(result.usage.prompt_tokens, 0, EMBED_PRICE)


def test_the_sdks_default_base64_decodes_to_the_same_vectors(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model=EMBED, input=DOCS[0], encoding_format="float").data[0].embedding
    # the openai SDK asks for base64 by default and decodes it itself (float32)
    decoded = client.embeddings.create(model=EMBED, input=DOCS[0]).data[0].embedding
    assert decoded == pytest.approx(floats, abs=1e-6)
    # asked for explicitly, it is handed over as sent: little-endian float32
    explicit = client.embeddings.create(model=EMBED, input=DOCS[0], encoding_format="base64").data[0].embedding
    raw = base64.b64decode(explicit)
    assert len(raw) == 4 * SIM_EMBEDDING_DIMENSIONS
    assert list(struct.unpack(f"<{SIM_EMBEDDING_DIMENSIONS}f", raw)) == pytest.approx(floats, abs=1e-6)


def test_token_id_inputs_are_embedded_too(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model=EMBED, input=[101, 2023, 102], encoding_format="float")
    many = client.embeddings.create(model=EMBED, input=[[101, 2023, 102], [7, 8]], encoding_format="float")
    assert len(one.data) == 1 and len(many.data) == 2
    assert one.data[0].embedding == many.data[0].embedding
    assert many.usage.prompt_tokens == 5


def test_dimensions_shorten_the_vectors_where_the_model_allows(client: openai.OpenAI) -> None:
    short = client.embeddings.create(model=EMBED, input=DOCS[0], dimensions=64, encoding_format="float")
    assert len(short.data[0].embedding) == 64
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=EMBED, input=DOCS[0], dimensions=10_000)
    assert refused.value.body["param"] == "dimensions"


def test_texts_sharing_words_are_closer_than_unrelated_ones(client: openai.OpenAI) -> None:
    a, b, c = (d.embedding for d in client.embeddings.create(model=EMBED, input=DOCS, encoding_format="float").data)
    assert _cosine(a, b) > _cosine(a, c)


def test_embeddings_are_billed_for_input_tokens_only(surfaces_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=surfaces_server.url + "/v1", api_key=surfaces_server.create_key("embed-billing"),
                           max_retries=0)
    result = client.embeddings.create(model=EMBED, input=DOCS)
    (row,) = ledger_rows(surfaces_server, "embed-billing", expect=1)
    _, kind, stream, prompt, completion, price, status = row
    assert (kind, stream, completion, status) == ("embeddings", 0, 0, "ok")
    assert prompt == result.usage.prompt_tokens and price == price_nano(prompt, 0, EMBED_PRICE)


@pytest.mark.parametrize(
    ("body", "param"),
    [({"input": ""}, "input"), ({"input": []}, "input"), ({"input": ["ok", ""]}, "input"),
     ({"input": "x", "encoding_format": "int8"}, "encoding_format"), ({"input": "x", "dimensions": 0}, "dimensions"),
     ({"input": "x", "surprise": True}, "surprise")],
)
def test_bad_requests_are_400s_naming_the_field(surfaces_server: LiveServer, key: str, body: dict, param: str) -> None:
    response = httpx.post(surfaces_server.url + "/v1/embeddings", json={"model": EMBED, **body},
                          headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_each_model_serves_only_its_endpoints(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as chat_model:
        client.embeddings.create(model=CHAT, input="hi")
    assert chat_model.value.body["code"] == "unsupported_endpoint"
    with pytest.raises(openai.BadRequestError) as embedding_model:
        client.chat.completions.create(model=EMBED, messages=[{"role": "user", "content": "hi"}])
    assert embedding_model.value.body["code"] == "unsupported_endpoint"
    cards = {m.id: m.model_extra["capabilities"] for m in client.models.list()}
    assert cards[CHAT] == ["chat", "completions", "responses", "messages"]
    assert cards[EMBED] == cards["default-embedding"] == ["embeddings"]


def test_langchain_openai_embeddings(surfaces_server: LiveServer, key: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False: LangChain would otherwise tokenize with tiktoken's online files
    embeddings = OpenAIEmbeddings(model=EMBED, base_url=surfaces_server.url + "/v1", api_key=key,
                                  check_embedding_ctx_length=False, max_retries=0)
    vectors = embeddings.embed_documents(DOCS)
    query = embeddings.embed_query(DOCS[0])
    assert len(vectors) == 3 and query == pytest.approx(vectors[0], abs=1e-6)
