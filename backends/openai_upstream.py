"""Backend for any OpenAI-compatible server: `vllm serve` on any chip, SGLang, llama.cpp.

One keep-alive connection pool per replica (``backends.upstream_http``); streams pass through chunk by
chunk; upstream failures become the typed errors of ``backends.base``. A vLLM
upstream's ``/metrics`` is scraped on an interval for routing telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from backends.base import (
    BackendError,
    Capabilities,
    Choice,
    ChoiceDelta,
    Completion,
    EmbeddingRequest,
    Embeddings,
    EngineStats,
    GenerationRequest,
    ReplicaUnavailable,
    StreamChunk,
    UpstreamTimeout,
    Usage,
)
from backends.upstream_errors import status_error, stream_error
from backends.upstream_http import (
    UpstreamConnectTimeout,
    UpstreamHTTPError,
    UpstreamPool,
    UpstreamReadTimeout,
    UpstreamResponse,
)
from backends.vllm_metrics import parse_vllm_metrics


def request_body(request: GenerationRequest, upstream_model: str, *, stream: bool) -> dict[str, Any]:
    """The OpenAI JSON body for a request: every standard field the client set, untouched."""
    s = request.sampling
    body: dict[str, Any] = {"model": upstream_model}
    if request.kind == "chat":
        body["messages"] = request.messages
        # the client's own name for the bound (o-series models accept only max_completion_tokens)
        if s.max_tokens is not None and "max_completion_tokens" not in request.passthrough:
            body["max_tokens"] = s.max_tokens
        if s.logprobs:
            body["logprobs"] = True
            if s.top_logprobs is not None:
                body["top_logprobs"] = s.top_logprobs
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.tools is not None:
            body["tools"] = request.tools
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.reasoning_effort is not None:
            body["reasoning_effort"] = request.reasoning_effort
        body.update(request.passthrough)
    else:
        body["prompt"] = request.prompt
        body["max_tokens"] = s.max_tokens
        if s.logprobs:
            body["logprobs"] = s.top_logprobs or 0
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(s, name)
        if value is not None:
            body[name] = value
    if s.n != 1:
        body["n"] = s.n
    if s.stop:
        body["stop"] = list(s.stop)
    if s.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in s.logit_bias.items()}
    attribution = request.attribution
    for name in ("user", "safety_identifier", "prompt_cache_key", "metadata", "store", "service_tier"):
        value = getattr(attribution, name)
        if value is not None:
            body[name] = value
    body.update(request.extra)
    if stream:
        body["stream"] = True
        # always ask for usage: the engine's count is what we bill
        body["stream_options"] = {"include_usage": True}
    return body


def context_length_of(models: Any, upstream_model: str) -> int | None:
    """The context window an upstream's ``GET /models`` reports for a model (vLLM: ``max_model_len``)."""
    entries = models.get("data") if isinstance(models, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get("id") == upstream_model:
            for key in ("max_model_len", "context_length", "context_window"):
                value = entry.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None


def _usage(data: dict[str, Any] | None) -> Usage | None:
    if not data:
        return None
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def _stop_string(choice: dict[str, Any]) -> str | None:
    """vLLM's servers say which stop string ended a choice (``stop_reason``); OpenAI's do not."""
    value = choice.get("stop_reason")
    return value if isinstance(value, str) else None


class OpenAIUpstreamBackend:
    """A replica reached over HTTP at an OpenAI-compatible ``/v1`` URL.

    Every field is passed through untouched, so the upstream decides: what it cannot
    do, it refuses itself, and its 4xx reaches the client.
    """

    capabilities = Capabilities(
        tools=True,
        custom_tools=True,
        structured_outputs=True,
        audio_output=True,
        web_search=True,
        moderation=True,
        extra_params=True,
        embeddings=True,
    )

    def __init__(
        self,
        replica_id: str,
        url: str,
        upstream_model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 3.0,
        metrics_url: str | None = None,
        metrics_interval_s: float = 2.0,
    ) -> None:
        self.replica_id = replica_id
        self._base = url.rstrip("/")
        self._model = upstream_model
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._connect_timeout = connect_timeout_s
        self._read_timeout = timeout_s
        self._health_timeout = max(connect_timeout_s, 2.0)
        self._metrics_url = metrics_url or (self._base.removesuffix("/v1") + "/metrics")
        self._metrics_interval = metrics_interval_s
        self._pool: UpstreamPool | None = None
        self._metrics_pool: UpstreamPool | None = None
        self._metrics_path = "/metrics"
        self._scraper: asyncio.Task[None] | None = None
        self._stats = EngineStats()
        self._context_length: int | None = None
        self._context_probe: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pool = UpstreamPool(
            self._base, connect_timeout_s=self._connect_timeout, read_timeout_s=self._read_timeout, headers=self._headers
        )
        parts = urlsplit(self._metrics_url)
        self._metrics_path = parts.path or "/metrics"
        self._metrics_pool = UpstreamPool(
            f"{parts.scheme}://{parts.netloc}", connect_timeout_s=self._connect_timeout, read_timeout_s=self._health_timeout,
            headers={k: v for k, v in self._headers.items() if k == "authorization"},
        )
        self._scraper = asyncio.create_task(self._scrape_loop(), name=f"metrics-{self.replica_id}")
        # not awaited: an upstream that is down must not hold up the gateway's start
        self._context_probe = asyncio.create_task(self.health(), name=f"context-{self.replica_id}")

    def context_length(self) -> int | None:
        """The upstream's context window, as its ``GET /models`` reported it (None until it has)."""
        return self._context_length

    async def close(self) -> None:
        if self._context_probe is not None:
            self._context_probe.cancel()
        if self._scraper is not None:
            self._scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scraper
        for pool in (self._pool, self._metrics_pool):
            if pool is not None:
                await pool.close()
        self._pool = None

    def _path(self, request: GenerationRequest) -> str:
        return "/chat/completions" if request.kind == "chat" else "/completions"

    def _require_pool(self) -> UpstreamPool:
        if self._pool is None:
            raise ReplicaUnavailable(f"replica {self.replica_id} is not started")
        return self._pool

    async def _post(self, request: GenerationRequest, *, stream: bool) -> UpstreamResponse:
        return await self._send(self._path(request), request_body(request, self._model, stream=stream))

    async def _send(self, path: str, body: dict[str, Any]) -> UpstreamResponse:
        pool = self._require_pool()
        payload = orjson.dumps(body)
        try:
            response = await pool.request("POST", path, payload)
        except (UpstreamReadTimeout, UpstreamConnectTimeout):
            raise UpstreamTimeout(f"replica {self.replica_id} timed out") from None
        except UpstreamHTTPError as exc:
            raise ReplicaUnavailable(f"replica {self.replica_id} is unreachable: {exc.__class__.__name__}") from None
        if response.status == 200:
            return response
        try:
            raw = await response.read()
        except UpstreamHTTPError:
            raw = b""
        raise self._status_error(response.status, raw, response.headers)

    def _status_error(self, status: int, raw: bytes, headers: Any) -> BackendError:
        return status_error(self.replica_id, status, raw, headers)

    async def _read(self, response: UpstreamResponse) -> bytes:
        try:
            return await response.read()
        except UpstreamReadTimeout:
            raise UpstreamTimeout(f"replica {self.replica_id} timed out") from None
        except UpstreamHTTPError:
            raise ReplicaUnavailable(f"replica {self.replica_id} dropped the connection") from None

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """``POST /embeddings``; floats are always asked for (the gateway encodes base64 itself)."""
        body: dict[str, Any] = {"model": self._model, "input": request.inputs, "encoding_format": "float"}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.attribution.user is not None:
            body["user"] = request.attribution.user
        raw = await self._read(await self._send("/embeddings", body))
        try:
            data = orjson.loads(raw)
            items = sorted(data["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError):
            raise ReplicaUnavailable(f"replica {self.replica_id} sent a malformed embeddings response") from None
        if len(vectors) != len(request.inputs):
            raise ReplicaUnavailable(f"replica {self.replica_id} sent {len(vectors)} vectors for {len(request.inputs)} inputs")
        return Embeddings(vectors, _usage(data.get("usage")))

    async def generate(self, request: GenerationRequest) -> Completion:
        response = await self._post(request, stream=False)
        raw = await self._read(response)
        try:
            data = orjson.loads(raw)
            choices = [self._choice(request, c) for c in data["choices"]]
        except (ValueError, KeyError, TypeError):
            raise ReplicaUnavailable(f"replica {self.replica_id} sent a malformed response") from None
        return Completion(choices=choices, usage=_usage(data.get("usage")))

    @staticmethod
    def _choice(request: GenerationRequest, c: dict[str, Any]) -> Choice:
        if request.kind == "chat":
            message = c.get("message") or {}
            return Choice(
                index=c.get("index", 0),
                text=message.get("content") or "",
                finish_reason=c.get("finish_reason"),
                logprobs=c.get("logprobs"),
                tool_calls=message.get("tool_calls") or None,
                stop_sequence=_stop_string(c),
            )
        return Choice(
            index=c.get("index", 0), text=c.get("text") or "", finish_reason=c.get("finish_reason"), logprobs=c.get("logprobs")
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        response = await self._post(request, stream=True)
        chat = request.kind == "chat"
        lines = self._sse_lines(response)
        finished = False
        try:
            async for line in lines:
                if line == b"[DONE]":
                    finished = True
                    return
                try:
                    data = orjson.loads(line)
                except ValueError:
                    raise ReplicaUnavailable(f"replica {self.replica_id} sent a malformed stream event") from None
                if "error" in data:
                    raise stream_error(self.replica_id, line)
                deltas = []
                for c in data.get("choices") or ():
                    if chat:
                        d = c.get("delta") or {}
                        text, tool_calls = d.get("content") or "", d.get("tool_calls")
                    else:
                        text, tool_calls = c.get("text") or "", None
                    deltas.append(
                        ChoiceDelta(
                            index=c.get("index", 0),
                            text=text,
                            finish_reason=c.get("finish_reason"),
                            logprobs=c.get("logprobs"),
                            tool_calls=tool_calls,
                            stop_sequence=_stop_string(c),
                        )
                    )
                usage = _usage(data.get("usage"))
                if deltas or usage is not None:
                    yield StreamChunk(deltas=deltas, usage=usage)
            raise ReplicaUnavailable(f"replica {self.replica_id} closed the stream before [DONE]")
        finally:
            await lines.aclose()
            if finished:
                response.finish()
            else:
                # closing early drops the connection, which makes vLLM abort the request
                response.close()

    async def _sse_lines(self, response: UpstreamResponse) -> AsyncIterator[bytes]:
        rest = b""
        try:
            async for chunk in response.chunks():
                lines = (rest + chunk if rest else chunk).split(b"\n")
                rest = lines.pop()
                for raw in lines:
                    if raw.startswith(b"data:"):
                        yield raw[5:].strip()
        except UpstreamReadTimeout:
            raise UpstreamTimeout(f"replica {self.replica_id} stalled mid-stream") from None
        except UpstreamHTTPError:
            raise ReplicaUnavailable(f"replica {self.replica_id} dropped the stream") from None
        if rest.startswith(b"data:"):
            yield rest[5:].strip()

    async def health(self) -> bool:
        try:
            pool = self._require_pool()
            response = await asyncio.wait_for(pool.request("GET", "/models", timeout=self._health_timeout), self._health_timeout)
            if response.status != 200 or self._context_length is not None:
                response.close()
                return response.status == 200
            # until the context window is known, the probe reads it from the model list
            raw = await asyncio.wait_for(response.read(), self._health_timeout)
            with contextlib.suppress(ValueError):
                self._context_length = context_length_of(orjson.loads(raw), self._model)
            return True
        except (UpstreamHTTPError, TimeoutError, BackendError):
            return False

    def stats(self) -> EngineStats:
        return self._stats

    async def _scrape_loop(self) -> None:
        misses = 0
        while misses < 3:  # not a vLLM upstream (no /metrics): stop asking
            await asyncio.sleep(self._metrics_interval)
            try:
                if self._metrics_pool is None:
                    return
                response = await self._metrics_pool.request("GET", self._metrics_path)
                body = await response.read()
                if response.status != 200:
                    misses += 1
                    continue
                text = body.decode(errors="replace")
            except (UpstreamHTTPError, TimeoutError):
                continue
            stats = parse_vllm_metrics(text)
            if stats is None:
                misses += 1
            else:
                misses = 0
                self._stats = stats
