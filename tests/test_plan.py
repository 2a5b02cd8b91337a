"""The request plan: one place decides model, internal request, token bounds, routing view."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backends.base import Capabilities, GenerationRequest, Sampling
from billing.keys import ApiKey
from billing.tokens import TokenAccounting
from gateway.catalog import ModelCatalog
from gateway.config import ModelConfig
from gateway.errors import APIError
from gateway.plan import DEFAULT_OUTPUT_RESERVE, Planner
from routing.registry import ReplicaRegistry
from tests.fakes.routing import ScriptedBackend, make_replica

PRICE = {"input_per_mtok": Decimal("0.2"), "output_per_mtok": Decimal("0.6")}


def key(models: tuple[str, ...] | None = None) -> ApiKey:
    return ApiKey(id="k1", tenant="acme", name=None, prefix="sk", models=models, created_at=0.0, revoked_at=None)


@pytest.fixture(scope="module")
def accounting() -> TokenAccounting:
    return TokenAccounting()


def planner(accounting: TokenAccounting, *, window: int | None = None, accepts_extra: bool = False) -> Planner:
    models = [
        ModelConfig(name="m", aliases=["default"], price=PRICE, max_model_len=window),
        ModelConfig(name="other", price=PRICE),
    ]
    backend = ScriptedBackend(capabilities=Capabilities(extra_params=accepts_extra))
    registry = ReplicaRegistry([make_replica("r1", backend=backend)])
    return Planner(ModelCatalog(models), registry, accounting)


def chat(text: str = "hi", *, max_tokens: int | None = None, n: int = 1, **extra):
    def build(request_id: str, model: str) -> GenerationRequest:
        return GenerationRequest(
            request_id, model, "chat", sampling=Sampling(max_tokens=max_tokens, n=n),
            messages=[{"role": "user", "content": text}], extra=dict(extra),
        )

    return build


async def test_an_alias_resolves_to_the_canonical_model_everywhere(accounting):
    plan = await planner(accounting).plan("chat", key(), model="default", routing=None, translate=chat(), stream=False)
    assert plan.model.name == plan.request.model == plan.route.model == "m"
    assert plan.surface == "chat" and plan.stream is False


async def test_the_prompt_bound_is_never_below_its_estimate_and_routing_gets_the_estimate(accounting):
    plan = await planner(accounting).plan("chat", key(), model="m", routing=None, translate=chat("x" * 500),
                                          stream=True)
    assert plan.prompt.bound >= plan.prompt.estimate > 0
    assert plan.route.prompt_tokens == plan.prompt.estimate


@pytest.mark.parametrize(
    ("window", "max_tokens", "reserved"),
    [(None, 50, 50), (None, None, DEFAULT_OUTPUT_RESERVE), (1000, None, None), (1000, 100, 100)],
)
async def test_the_output_reserve_is_what_the_client_asked_else_what_the_context_leaves(
    accounting, window, max_tokens, reserved
):
    plan = await planner(accounting, window=window).plan(
        "chat", key(), model="m", routing=None, translate=chat(max_tokens=max_tokens), stream=False
    )
    expected = reserved if reserved is not None else window - plan.prompt.estimate
    assert plan.max_output == plan.route.max_tokens == expected


async def test_a_prompt_plus_max_tokens_beyond_the_context_is_refused_before_anything_else(accounting):
    with pytest.raises(APIError) as refused:
        await planner(accounting, window=100).plan(
            "chat", key(), model="m", routing=None, translate=chat("word " * 50, max_tokens=80), stream=False
        )
    assert (refused.value.status, refused.value.code) == (400, "context_length_exceeded")
    assert "maximum context length is 100 tokens" in refused.value.message


@pytest.mark.parametrize(
    ("model", "allowed", "status", "code"),
    [("nope", None, 404, "model_not_found"), ("m", ("other",), 403, "model_not_allowed")],
)
async def test_unknown_or_forbidden_models_are_refused(accounting, model, allowed, status, code):
    with pytest.raises(APIError) as refused:
        await planner(accounting).plan("chat", key(allowed), model=model, routing=None, translate=chat(), stream=False)
    assert (refused.value.status, refused.value.code) == (status, code)


async def test_a_preference_suffix_and_routing_body_become_the_routing_view(accounting):
    plan = await planner(accounting).plan(
        "chat", key(), model="m:cheap", routing={"chips": ["nvidia"]}, translate=chat(), stream=False
    )
    assert plan.route.preference.prefer == "cost"
    assert plan.route.preference.chips == ("nvidia",)
    assert plan.route.prefix_key == "hi"


async def test_a_malformed_preference_is_a_400_naming_the_field(accounting):
    with pytest.raises(APIError) as refused:
        await planner(accounting).plan("chat", key(), model="m", routing={"prefer": "free"}, translate=chat(),
                                       stream=False)
    assert (refused.value.status, refused.value.param) == (400, "routing.prefer")


async def test_extra_fields_go_only_where_a_replica_understands_them(accounting):
    with pytest.raises(APIError) as refused:
        await planner(accounting).plan("chat", key(), model="m", routing=None, translate=chat(top_k=5), stream=False)
    assert (refused.value.code, refused.value.param) == ("unsupported_parameter", "top_k")
    plan = await planner(accounting, accepts_extra=True).plan(
        "chat", key(), model="m", routing=None, translate=chat(top_k=5), stream=False
    )
    assert plan.request.extra == {"top_k": 5}


async def test_every_plan_gets_its_own_request_id(accounting):
    p = planner(accounting)
    ids = {(await p.plan("chat", key(), model="m", routing=None, translate=chat(), stream=False)).request.request_id
           for _ in range(50)}
    assert len(ids) == 50
