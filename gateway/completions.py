"""The path of one completion request: admit, route, generate, meter, settle, answer.

HTTP parsing happens before (``gateway.routes_openai``); routing, backends and
billing are the objects passed in. Nothing here knows a chip or a price.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from backends.base import BackendError, GenerationRequest, RequestKind, UpstreamRateLimited, UpstreamRejected, Usage
from billing.biller import Admission, Biller, RequestOutcome
from billing.errors import LedgerUnavailable, LimitsUnavailable, QuotaExceeded, RateLimitExceeded
from billing.keys import ApiKey
from billing.meter import StreamMeter, usage_or_estimate
from billing.tokens import TokenCounter
from gateway import errors
from gateway.catalog import ModelCatalog
from gateway.chat_fields import check_fields
from gateway.config import ModelConfig
from gateway.errors import APIError
from gateway.metrics import GatewayMetrics, status_class
from gateway.openai_format import DONE_FRAME, ChunkWriter, completion_body, error_frame
from gateway.schemas import ChatCompletionRequest, CompletionRequest
from gateway.translate import chat_request, completion_request, response_style
from routing.preferences import InvalidPreference, parse_preference
from routing.router import NoReplicaAvailable, PreferenceUnsatisfiable, Router, RouteRequest

#: prompts longer than this are estimated from their length instead of tokenized on the loop
_TOKENIZE_LIMIT_CHARS = 32_000
#: output reserved for admission when neither the client nor the model config bounds it
_DEFAULT_OUTPUT_RESERVE = 4096
_PREFIX_CHARS = 256


@dataclass(slots=True)
class Caller:
    """Who is calling and how the call is identified."""

    key: ApiKey
    request_id: str  # echoed in x-request-id (the client's own when it sent one)
    received: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class Answer:
    """A finished response: JSON body or SSE frames, plus headers."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    frames: AsyncIterator[bytes] | None = None


def backend_error(exc: BackendError) -> APIError:
    """How a replica's failure is told to the client."""
    if isinstance(exc, UpstreamRejected):
        return APIError(exc.status, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, UpstreamRateLimited):
        return errors.unavailable(
            "Every replica of this model is busy; retry shortly.", retry_after=exc.retry_after or 1, code="replicas_busy"
        )
    if exc.status == 504:
        return errors.upstream_timeout(exc.message)
    # a replica that just failed is probed again within a breaker cooldown: tell clients to come back
    return errors.unavailable(exc.message, retry_after=exc.retry_after or 1)


class CompletionService:
    """Runs chat and text completions through limits, routing and billing."""

    def __init__(
        self,
        catalog: ModelCatalog,
        router: Router,
        biller: Biller,
        tokens: TokenCounter,
        metrics: GatewayMetrics,
    ) -> None:
        self._catalog = catalog
        self._router = router
        self._biller = biller
        self._tokens = tokens
        self._metrics = metrics

    # -- admission -------------------------------------------------------------------------
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

    def _estimate_prompt(self, request: GenerationRequest) -> int:
        if request.kind == "chat":
            chars = sum(len(str(m.get("content") or "")) for m in request.messages or ())
            if chars > _TOKENIZE_LIMIT_CHARS:
                return chars // 4
            return self._tokens.count_messages(request.messages or [])
        prompt = request.prompt
        if isinstance(prompt, list):
            return len(prompt)
        if len(prompt or "") > _TOKENIZE_LIMIT_CHARS:
            return len(prompt or "") // 4
        return self._tokens.count_text(prompt or "")

    @staticmethod
    def _output_reserve(request: GenerationRequest, model: ModelConfig, prompt_tokens: int) -> int:
        if request.sampling.max_tokens is not None:
            return request.sampling.max_tokens
        if model.max_model_len:
            return max(1, model.max_model_len - prompt_tokens)
        return _DEFAULT_OUTPUT_RESERVE

    async def _admit(self, caller: Caller, model: ModelConfig, request: GenerationRequest) -> tuple[Admission, int, int]:
        prompt_tokens = self._estimate_prompt(request)
        max_tokens = self._output_reserve(request, model, prompt_tokens)
        try:
            admission = await self._biller.admit(
                caller.key, model.name, prompt_tokens=prompt_tokens, max_tokens=max_tokens, n=request.sampling.n
            )
        except RateLimitExceeded as exc:
            self._metrics.rate_limited.labels(exc.limit).inc()
            raise APIError(429, exc.message, type=exc.type, code=exc.code, headers=exc.headers) from None
        except QuotaExceeded as exc:
            self._metrics.rate_limited.labels("budget").inc()
            raise APIError(429, exc.message, type="insufficient_quota", code="insufficient_quota") from None
        except LimitsUnavailable as exc:
            # refused, never admitted unchecked
            raise errors.unavailable(exc.message, retry_after=1, code=exc.code) from None
        return admission, prompt_tokens, max_tokens

    def _prepare(
        self, kind: RequestKind, body: ChatCompletionRequest | CompletionRequest, caller: Caller
    ) -> tuple[ModelConfig, GenerationRequest, Any, str]:
        model, preference = self._resolve(body.model, body.routing, caller.key)
        internal_id = uuid.uuid4().hex
        if kind == "chat":
            request = chat_request(body, internal_id, model.name)  # type: ignore[arg-type]
        else:
            request = completion_request(body, internal_id, model.name)  # type: ignore[arg-type]
        # chat-surface: refuse what no replica can honour (the needed capabilities are returned for routing)
        replicas = self._router.registry.for_model(model.name)
        check_fields(request, model.name, [(r.id, r.backend.capabilities) for r in replicas])
        prefix = _prefix_key(request)
        return model, request, preference, prefix

    def _outcome(self, caller: Caller, request: GenerationRequest, stream: bool, **kw: Any) -> RequestOutcome:
        routed = kw.pop("routed", None)
        replica = routed.replica if routed is not None else None
        now = time.time()
        elapsed = time.perf_counter() - caller.received
        ttft = getattr(routed, "ttft_s", None)
        return RequestOutcome(
            request_id=request.request_id,
            key=caller.key,
            model=request.model,
            replica_id=replica.id if replica else None,
            chip=replica.chip if replica else None,
            replica_cost_per_hour=replica.cost_per_hour if replica else Decimal(0),
            replica_seconds=getattr(routed, "replica_seconds", 0.0) or 0.0,
            kind=request.kind,
            stream=stream,
            started_at=now - elapsed,
            first_token_at=(now - elapsed + ttft) if ttft is not None else None,
            finished_at=now,
            **kw,
        )

    async def _start(
        self, kind: RequestKind, body: ChatCompletionRequest | CompletionRequest, caller: Caller, *, stream: bool
    ) -> tuple[ModelConfig, GenerationRequest, Admission, int, Any]:
        """Admit the request and place it on a replica (generated, or its stream opened)."""
        model, request, preference, prefix = self._prepare(kind, body, caller)
        admission, prompt_tokens, max_tokens = await self._admit(caller, model, request)
        route = RouteRequest(
            model=model.name, prompt_tokens=prompt_tokens, max_tokens=max_tokens, n=request.sampling.n,
            prefix_key=prefix, preference=preference,
        )
        try:
            if stream:
                routed = await self._router.open_stream(request, route)
            else:
                routed = await self._router.generate(request, route)
        except BaseException as exc:
            await self._settle_failure(caller, request, admission, exc, stream=stream)
            raise self._client_error(exc) from None
        return model, request, admission, prompt_tokens, routed

    # -- non-streaming -----------------------------------------------------------------------
    async def complete(self, kind: RequestKind, body: ChatCompletionRequest | CompletionRequest, caller: Caller) -> Answer:
        model, request, admission, _, routed = await self._start(kind, body, caller, stream=False)
        usage = routed.result.usage
        if usage is None:
            usage = await usage_or_estimate(self._tokens, request, routed.result)
        try:
            settlement = await self._biller.settle(
                admission, self._outcome(caller, request, False, routed=routed, usage=usage, status="ok", error_code=None)
            )
        except LedgerUnavailable:
            # the answer exists but its usage row is not durable: never report it complete
            raise errors.unavailable(
                "Usage could not be recorded; the answer is withheld. Retry shortly.", retry_after=1, code="ledger_unavailable"
            ) from None
        self._observe(kind, model.name, routed, usage, settlement, stream=False)
        response_id = ("chatcmpl-" if kind == "chat" else "cmpl-") + request.request_id
        out = completion_body(
            kind, response_id, int(time.time()), body.model, routed.result, usage, settlement.cost_usd, response_style(body)
        )
        headers = self._headers(caller, routed.replica, admission, settlement.cost_usd)
        headers["x-maas-overhead-ms"] = self._overhead_ms(caller, routed.latency_s, kind)
        return Answer(200, headers, body=out)

    # -- streaming -----------------------------------------------------------------------------
    async def stream(self, kind: RequestKind, body: ChatCompletionRequest | CompletionRequest, caller: Caller) -> Answer:
        model, request, admission, prompt_tokens, routed = await self._start(kind, body, caller, stream=True)
        headers = self._headers(caller, routed.replica, admission, None)
        # time to the first byte is the part of the overhead a streaming client feels
        headers["x-maas-overhead-ms"] = self._overhead_ms(caller, routed.ttft_s, kind)
        response_id = ("chatcmpl-" if kind == "chat" else "cmpl-") + request.request_id
        writer = ChunkWriter(kind, response_id, int(time.time()), body.model, body.include_usage, response_style(body))
        frames = self._frames(kind, model, caller, request, admission, routed, writer, prompt_tokens, body.include_usage)
        return Answer(200, headers, frames=frames)

    async def _frames(
        self, kind, model, caller, request, admission, routed, writer, prompt_tokens, include_usage
    ) -> AsyncIterator[bytes]:
        meter = StreamMeter(self._tokens)
        settled = False
        try:
            try:
                async for chunk in routed:
                    meter.on_chunk(chunk)
                    for frame in writer.frames(chunk):
                        yield frame
            except BackendError as exc:
                # the replica failed after the first byte: never retried, billed for what was delivered
                usage, _ = meter.final_usage(prompt_tokens_estimate=prompt_tokens)
                outcome = self._outcome(
                    caller, request, True, routed=routed, usage=usage, status="partial", error_code=exc.code
                )
                settled = True
                settlement = await self._biller.settle(admission, outcome)
                self._observe(kind, model.name, routed, usage, settlement, stream=True, status=502)
                yield error_frame(backend_error(exc).body())
                return
            # the stream ran to its end: complete, even when its count had to be estimated
            usage, _ = meter.final_usage(prompt_tokens_estimate=prompt_tokens)
            outcome = self._outcome(caller, request, True, routed=routed, usage=usage, status="ok", error_code=None)
            settled = True
            # the client sees the end of the stream only once its usage row is durable
            settlement = await self._biller.settle(admission, outcome)
            self._observe(kind, model.name, routed, usage, settlement, stream=True)
            if include_usage:
                yield writer.usage_frame(usage, settlement.cost_usd)
            yield DONE_FRAME
        finally:
            if not settled:
                # the client went away mid-stream: bill what was delivered, without awaiting
                usage, _ = meter.final_usage(prompt_tokens_estimate=prompt_tokens)
                self._biller.settle_nowait(
                    admission,
                    self._outcome(
                        caller, request, True, routed=routed, usage=usage, status="partial", error_code="client_disconnected"
                    ),
                )
                self._metrics.errors.labels(kind, "499", "client_disconnected").inc()
            await asyncio.shield(routed.aclose())

    # -- shared ----------------------------------------------------------------------------------
    async def _settle_failure(
        self, caller: Caller, request: GenerationRequest, admission: Admission, exc: BaseException, *, stream: bool
    ) -> None:
        code = getattr(exc, "code", None) or type(exc).__name__
        outcome = self._outcome(caller, request, stream, usage=Usage(), status="error", error_code=str(code))
        if isinstance(exc, asyncio.CancelledError):
            self._biller.settle_nowait(admission, outcome)
            return
        await self._biller.settle(admission, outcome)

    @staticmethod
    def _client_error(exc: BaseException) -> BaseException:
        if isinstance(exc, BackendError):
            return backend_error(exc)
        if isinstance(exc, NoReplicaAvailable):
            return errors.unavailable(exc.message, retry_after=exc.retry_after)
        if isinstance(exc, PreferenceUnsatisfiable):
            if exc.status == 400:
                return errors.bad_request(exc.message, param="routing.chips", code="preference_unsatisfiable")
            return errors.unavailable(exc.message, retry_after=exc.retry_after, code="preference_unsatisfiable")
        return exc

    def _headers(self, caller: Caller, replica: Any, admission: Admission, cost: Decimal | None) -> dict[str, str]:
        headers = {
            "x-request-id": caller.request_id,
            "x-maas-replica": replica.id,
            "x-maas-chip": replica.chip,
            **admission.headers,
        }
        if replica.simulated:
            headers["x-maas-simulated"] = "true"
        if cost is not None:
            headers["x-maas-cost-usd"] = str(cost)
        return headers

    def _overhead_ms(self, caller: Caller, upstream_s: float | None, endpoint: str) -> str:
        overhead = max(0.0, time.perf_counter() - caller.received - (upstream_s or 0.0))
        self._metrics.overhead.labels(endpoint).observe(overhead)
        return f"{overhead * 1000:.3f}"

    def _observe(self, kind, model: str, routed, usage: Usage, settlement, *, stream: bool, status: int = 200) -> None:
        replica = routed.replica
        m = self._metrics
        m.requests.labels(kind, model, replica.id, replica.chip, status_class(status)).inc()
        m.latency.labels(kind, model, "true" if stream else "false").observe(routed.latency_s or 0.0)
        if routed.ttft_s is not None:
            m.ttft.labels(model, replica.chip).observe(routed.ttft_s)
        if usage.completion_tokens > 1 and routed.ttft_s is not None and routed.latency_s:
            m.tpot.labels(model, replica.chip).observe(
                max(0.0, routed.latency_s - routed.ttft_s) / (usage.completion_tokens - 1)
            )
        m.billed(
            model, replica.id, replica.chip, usage.prompt_tokens, usage.completion_tokens,
            settlement.cost_usd, settlement.record.compute_cost_nano_usd / Decimal(10**9),
        )


def _prefix_key(request: GenerationRequest) -> str | None:
    """The start of the prompt, so that requests sharing a prefix can share a replica's cache."""
    if request.kind == "chat":
        text = "".join(str(m.get("content") or "") for m in (request.messages or ())[:2])
    elif isinstance(request.prompt, list):
        text = ",".join(map(str, request.prompt[:64]))
    else:
        text = request.prompt or ""
    return text[:_PREFIX_CHARS] or None
