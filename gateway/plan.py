"""A request becomes one typed plan, built in one place, before anything is reserved or routed.

The plan holds what every later step needs: the resolved model, the internal
request the backends take, the prompt's token estimate and bound, the output
reserved, the routing view (prefix key, preference) and how to answer (stream,
usage chunk). Every API surface (chat, completions, Responses, Messages,
embeddings) translates its body into an internal request and gets its plan here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backends.base import EmbeddingRequest, GenerationRequest
from billing.keys import ApiKey
from billing.tokens import PromptText, PromptTokens, TokenAccounting
from gateway import errors
from gateway.catalog import ModelCatalog
from gateway.chat_fields import check_fields
from gateway.config import ModelConfig
from gateway.context_window import model_context_length
from gateway.endpoints import check_endpoint
from gateway.prompt_text import prefix_key, prompt_text
from routing.preferences import InvalidPreference, parse_preference
from routing.registry import ReplicaRegistry
from routing.route import RouteRequest

#: output reserved for admission when neither the client nor the model bounds it
DEFAULT_OUTPUT_RESERVE = 4096


@dataclass(slots=True)
class Caller:
    """Who is calling and how the call is identified."""

    key: ApiKey
    request_id: str  # echoed in x-request-id (the client's own when it sent one)
    received: float = field(default_factory=time.perf_counter)
    #: wall-clock arrival time (for the ledger)
    arrived_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Everything decided about a request before it is admitted."""

    #: the API surface, also the ledger's ``kind`` and the metrics' ``endpoint``
    surface: str
    model: ModelConfig
    request: GenerationRequest | EmbeddingRequest
    prompt: PromptTokens
    #: output tokens reserved per choice (the client's max_tokens, else what the context leaves)
    max_output: int
    route: RouteRequest
    stream: bool
    include_usage: bool

    @property
    def n(self) -> int:
        return self.request.sampling.n if isinstance(self.request, GenerationRequest) else 1


class InternalIds:
    """Request ids for the ledger and response ids: a random per-process prefix and a counter."""

    __slots__ = ("_prefix", "_next")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = 0

    def new(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next:016x}"


class Planner:
    """Builds plans: resolves the model and preference, translates, estimates, checks the context."""

    def __init__(self, catalog: ModelCatalog, registry: ReplicaRegistry, accounting: TokenAccounting) -> None:
        self._catalog = catalog
        self._registry = registry
        self._accounting = accounting
        self._ids = InternalIds()

    async def plan(
        self,
        surface: str,
        key: ApiKey,
        *,
        model: str,
        routing: Any,
        translate: Callable[[str, str], GenerationRequest],
        stream: bool,
        include_usage: bool = False,
    ) -> RequestPlan:
        """``translate(request_id, model_name)`` builds the internal request from the surface's body."""
        config, preference = self._resolve(model, routing, key)
        check_endpoint(config, surface, model)
        request = translate(self._ids.new(), config.name)
        replicas = self._registry.for_model(config.name)
        needs = check_fields(request, config.name, [(r.id, r.backend.capabilities) for r in replicas])
        prompt = await self._accounting.prompt(config.name, prompt_text(request))
        window = model_context_length(config.max_model_len, (r.backend for r in replicas))
        max_output = _output_reserve(request, window, prompt.estimate)
        route = RouteRequest(
            model=config.name,
            prompt_tokens=prompt.estimate,
            max_tokens=max_output,
            n=request.sampling.n,
            prefix_key=request.attribution.affinity_key or prefix_key(request),
            preference=preference,
            needs=needs,
        )
        return RequestPlan(surface, config, request, prompt, max_output, route, stream, include_usage)

    async def plan_embeddings(
        self, key: ApiKey, *, model: str, routing: Any, translate: Callable[[str, str], EmbeddingRequest]
    ) -> RequestPlan:
        """The plan of an embeddings request: input tokens only, no output reserved."""
        config, preference = self._resolve(model, routing, key)
        check_endpoint(config, "embeddings", model)
        request = translate(self._ids.new(), config.name)
        texts = tuple(item for item in request.inputs if isinstance(item, str))
        ids = sum(len(item) for item in request.inputs if not isinstance(item, str))
        prompt = await self._accounting.prompt(config.name, PromptText(texts, token_ids=ids))
        route = RouteRequest(
            model=config.name, prompt_tokens=prompt.estimate, max_tokens=0, preference=preference,
            needs=frozenset({"embeddings"}),
        )
        return RequestPlan("embeddings", config, request, prompt, 0, route, stream=False, include_usage=False)

    def _resolve(self, requested: str, routing: Any, key: ApiKey) -> tuple[ModelConfig, Any]:
        try:
            name, preference = parse_preference(requested, routing)
        except InvalidPreference as exc:
            raise errors.bad_request(exc.message, param=exc.param) from None
        model = self._catalog.resolve(name)
        if model is None:
            raise errors.model_not_found(requested)
        if not key.allows(model.name, *model.aliases):
            raise errors.model_not_allowed(requested)
        return model, preference


def _output_reserve(request: GenerationRequest, window: int | None, prompt_tokens: int) -> int:
    """Output tokens reserved per choice; refuses a prompt (plus the output asked for) beyond the window."""
    asked = request.sampling.max_tokens
    if window is not None and prompt_tokens + (asked or 1) > window:
        raise errors.context_length_exceeded(window, prompt_tokens, asked)
    if asked is not None:
        return asked
    if window is not None:
        return max(1, window - prompt_tokens)
    return DEFAULT_OUTPUT_RESERVE
