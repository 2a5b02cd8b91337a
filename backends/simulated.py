"""The ``simulated`` backend: a labelled test double of a replica on a chip we don't have.

It runs a :class:`~backends.chips.ChipProfile` as a continuous-batching engine: one
scheduler task per backend runs steps; each step every running sequence (at most
``profile.max_batch``; the rest wait in FIFO order) gets one token, and lasts the
profile's decode step time for that batch plus the prefill of the prompts admitted
in it (a chunked-prefill simplification). A sequence's first token arrives at the
end of the step it joined, so TTFT and TPOT under load come out of the batching.
Text is deterministic nonsense from :mod:`backends.sim_text`; tool calls and JSON
formats are synthetic values that validate against the request's schemas
(:mod:`backends.sim_structured`); usage is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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
    UpstreamRejected,
    Usage,
)
from backends.chips import ChipProfile
from backends.sim_embedding import SIM_EMBEDDING_DIMENSIONS, sim_embedding
from backends.sim_structured import draft_structured, merge_tool_deltas
from backends.sim_text import (
    Drafted,
    PrefixCache,
    chat_logprobs,
    completion_logprobs,
    draft_choice,
    fake_logprobs,
    merge_logprobs,
    render_chat,
    seeded_rng,
    tokenize,
)

#: completion cap when the request sets no max_tokens
DEFAULT_MAX_TOKENS = 512
#: KV capacity of a replica, in tokens per batch slot
KV_TOKENS_PER_SLOT = 2048
_MAX_LAG_S = 0.05


@dataclass(eq=False, slots=True)
class _Run:
    """One request in the engine: its sequences and the queue its consumer reads."""

    kind: str
    prompt_tokens: int
    cached_tokens: int
    events: asyncio.Queue[list[ChoiceDelta]] = field(default_factory=asyncio.Queue)
    sequences: list[_Sequence] = field(default_factory=list)
    error: BackendError | None = None


@dataclass(eq=False, slots=True)
class _Sequence:
    """One choice being generated, one token per engine step."""

    run: _Run
    index: int
    draft: Drafted
    #: prompt tokens this sequence holds, and those it must compute (the first choice only)
    prompt_tokens: int
    prefill_tokens: int
    top_logprobs: int | None  # None: no logprobs asked
    logprob_rng: Any = None
    emitted: int = 0
    text_offset: int = 0

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.emitted

    def next_delta(self) -> ChoiceDelta:
        i = self.emitted
        self.emitted += 1
        last = self.emitted == len(self.draft.deltas)
        text = self.draft.deltas[i]
        logprobs = self._logprobs(self.draft.tokens[i]) if self.top_logprobs is not None else None
        self.text_offset += len(text)
        tool_calls = self.draft.tool_deltas[i] if self.draft.tool_deltas is not None else None
        return ChoiceDelta(
            index=self.index,
            text=text,
            finish_reason=self.draft.finish_reason if last else None,
            tokens=1,
            logprobs=logprobs,
            tool_calls=list(tool_calls) if tool_calls else None,
            stop_sequence=self.draft.stop_sequence if last else None,
        )

    @property
    def done(self) -> bool:
        return self.emitted >= len(self.draft.deltas)

    def _logprobs(self, token: str) -> dict[str, Any]:
        chosen, top = fake_logprobs(self.logprob_rng, token, self.top_logprobs or 0)
        if self.run.kind == "chat":
            return chat_logprobs(token, chosen, top)
        return completion_logprobs(token, chosen, top, self.text_offset)


class SimulatedBackend:
    """TEST DOUBLE, not a model: simulates a vLLM replica with a chip's published profile.

    Waits for real (``sleep``, ``asyncio.sleep`` by default, times multiplied by
    ``time_scale``), batches like vLLM, answers deterministic filler text with exact
    usage; tool calls and JSON formats get schema-valid synthetic values, never prose.
    Options: ``max_model_len`` (the context window: reject / cap like vLLM), ``prefix_caching``
    (report ``cached_tokens`` and skip their prefill), ``jitter`` (+-fraction per step,
    seeded). Faults are injected with :meth:`kill`, :meth:`revive` and :meth:`fail_next`.
    """

    #: this backend is a test double; reports and /admin must say so
    simulated = True
    #: it stands in for a vLLM replica with tool parsing and structured outputs (or for an
    #: embedding model: see :mod:`backends.sim_embedding`); vLLM's extras (top_k, ...) are
    #: refused, since the double could not honour them
    capabilities = Capabilities(tools=True, structured_outputs=True, embeddings=True)

    def __init__(
        self,
        profile: ChipProfile,
        served_model: str,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        max_model_len: int | None = None,
        prefix_caching: bool = False,
        jitter: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if max_model_len is not None and max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, got {max_model_len}")
        self.profile = profile
        self.served_model = served_model
        self.time_scale = time_scale
        self.seed = seed
        self.max_model_len = max_model_len
        self.jitter = jitter
        self._jitter_rng = random.Random(seed)
        #: how the engine waits out a step (tests pass a recorder to check step times)
        self._sleep = sleep
        self.kv_capacity_tokens = profile.max_batch * KV_TOKENS_PER_SLOT
        self._prefix_cache = (
            PrefixCache(self.kv_capacity_tokens // PrefixCache.BLOCK) if prefix_caching else None
        )
        self._running: list[_Sequence] = []
        self._waiting: deque[_Sequence] = deque()
        self._wakeup = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._killed = False
        self._faults: deque[BackendError] = deque()
        #: the exception that stopped the scheduler, if a bug did (health() is then False)
        self.crash: BaseException | None = None

    @property
    def label(self) -> str:
        """How to show this replica's engine: always says it is simulated."""
        return f"simulated {self.profile.name}"

    def __repr__(self) -> str:
        return f"SimulatedBackend({self.profile.name!r}, {self.served_model!r}, time_scale={self.time_scale})"

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the scheduler task (idempotent)."""
        if self._scheduler is None or self._scheduler.done():
            # a fresh event: the old one may be bound to the loop of an earlier start
            self._wakeup = asyncio.Event()
            self._scheduler = asyncio.create_task(self._schedule(), name=f"sim-{self.profile.name}")

    async def close(self) -> None:
        """Stop the scheduler; in-flight requests end with ReplicaUnavailable."""
        task, self._scheduler = self._scheduler, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all("simulated replica closed")

    async def __aenter__(self) -> SimulatedBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def health(self) -> bool:
        """True while started, not killed, and the scheduler is alive."""
        return self._serving()

    def context_length(self) -> int | None:
        """The context window it enforces (``max_model_len``), None when unbounded."""
        return self.max_model_len

    def stats(self) -> EngineStats:
        """Running and waiting sequences, and KV tokens held / capacity."""
        held = sum(s.kv_tokens for s in self._running)
        return EngineStats(
            running=len(self._running),
            waiting=len(self._waiting),
            kv_cache_usage=min(1.0, held / self.kv_capacity_tokens),
        )

    # -- fault injection (tests) -------------------------------------------------

    def kill(self) -> None:
        """Make the replica dead: health() False; in-flight and new requests fail."""
        self._killed = True
        self._fail_all("simulated replica killed")

    def revive(self) -> None:
        """Undo :meth:`kill`."""
        self._killed = False

    def fail_next(self, n: int = 1, exc: BackendError | type[BackendError] | None = None) -> None:
        """Make the next ``n`` requests raise ``exc`` (default ReplicaUnavailable) before any token."""
        for _ in range(n):
            if exc is None:
                self._faults.append(ReplicaUnavailable("injected failure (simulated)"))
            elif isinstance(exc, type):
                self._faults.append(exc("injected failure (simulated)"))
            else:
                # a copy each time, so tracebacks of separate failures do not pile up
                self._faults.append(copy.copy(exc))

    # -- requests ----------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> Completion:
        """Run a request to completion (same engine path as :meth:`stream`)."""
        texts: dict[int, list[str]] = {}
        finish: dict[int, str | None] = {}
        stops: dict[int, str] = {}
        logprobs: dict[int, list[Any]] = {}
        calls: dict[int, list[dict[str, Any]]] = {}
        usage = Usage()
        async with contextlib.aclosing(self.stream(request)) as chunks:
            async for chunk in chunks:
                for delta in chunk.deltas:
                    texts.setdefault(delta.index, []).append(delta.text)
                    calls.setdefault(delta.index, []).extend(delta.tool_calls or ())
                    if delta.finish_reason is not None:
                        finish[delta.index] = delta.finish_reason
                    if delta.stop_sequence is not None:
                        stops[delta.index] = delta.stop_sequence
                    if delta.logprobs is not None:
                        logprobs.setdefault(delta.index, []).append(delta.logprobs)
                if chunk.usage is not None:
                    usage = chunk.usage
        choices = [
            Choice(
                index=i,
                text="".join(texts[i]),
                finish_reason=finish.get(i),
                logprobs=merge_logprobs(logprobs[i]) if i in logprobs else None,
                tool_calls=merge_tool_deltas(calls[i]) if calls.get(i) else None,
                stop_sequence=stops.get(i),
            )
            for i in sorted(texts)
        ]
        return Completion(choices=choices, usage=usage)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Yield one chunk per engine step (a delta per choice, one token each); the last has usage.

        Closing the iterator early takes the request's sequences out of the batch at once.
        """
        run = self._submit(request)
        try:
            unfinished = len(run.sequences)
            completion_tokens = 0
            while unfinished:
                deltas = await run.events.get()
                if run.error is not None:
                    raise run.error
                completion_tokens += sum(d.tokens or 0 for d in deltas)
                unfinished -= sum(1 for d in deltas if d.finish_reason is not None)
                usage = None
                if not unfinished:
                    usage = Usage(
                        prompt_tokens=run.prompt_tokens,
                        completion_tokens=completion_tokens,
                        cached_tokens=run.cached_tokens,
                    )
                yield StreamChunk(deltas=deltas, usage=usage)
        finally:
            self._withdraw(run)

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """Deterministic vectors from the text (a labelled double), after the chip's prefill time."""
        if not self._serving():
            raise ReplicaUnavailable(f"simulated replica ({self.profile.name}) is not serving")
        if self._faults:
            raise self._faults.popleft()
        if request.model != self.served_model:
            raise UpstreamRejected(f"model {request.model!r} is not served here", status=404, param="model")
        if request.dimensions is not None and not 1 <= request.dimensions <= SIM_EMBEDDING_DIMENSIONS:
            raise UpstreamRejected(
                f"dimensions must be between 1 and {SIM_EMBEDDING_DIMENSIONS} for this model.", param="dimensions"
            )
        tokens = sum(len(tokenize(i)) if isinstance(i, str) else len(i) for i in request.inputs)
        await self._sleep(self.profile.prefill_time_s(tokens) * self.time_scale)
        vectors = [sim_embedding(i, seed=self.seed, dimensions=request.dimensions) for i in request.inputs]
        return Embeddings(vectors, Usage(prompt_tokens=tokens))

    def _submit(self, request: GenerationRequest) -> _Run:
        if not self._serving():
            state = "killed" if self._killed else "not running"
            raise ReplicaUnavailable(f"simulated replica ({self.profile.name}) is {state}")
        if self._faults:
            raise self._faults.popleft()
        self.capabilities.refuse_unsupported(request)
        prompt_text, tokens = self._prompt(request)
        prompt_tokens = len(tokens)
        sampling = request.sampling
        if sampling.n < 1:
            raise UpstreamRejected("n must be at least 1", param="n")
        if sampling.max_tokens is not None and sampling.max_tokens < 1:
            raise UpstreamRejected("max_tokens must be at least 1", param="max_tokens")
        cap = DEFAULT_MAX_TOKENS if sampling.max_tokens is None else sampling.max_tokens
        if self.max_model_len is not None:
            room = self.max_model_len - prompt_tokens
            if room < 1 or (sampling.max_tokens or 0) > room:
                # vLLM's wording, so gateway tests see what a real replica says
                raise UpstreamRejected(
                    f"This model's maximum context length is {self.max_model_len} tokens. However, "
                    f"you requested {prompt_tokens + (sampling.max_tokens or 0)} tokens "
                    f"({prompt_tokens} in the prompt, {sampling.max_tokens or 0} in the completion).",
                    param="messages" if request.kind == "chat" else "prompt",
                )
            cap = min(cap, room)
        cached = self._prefix_cache.lookup(tokens) if self._prefix_cache else 0
        asked_logprobs = sampling.logprobs or sampling.top_logprobs is not None
        run = _Run(kind=request.kind, prompt_tokens=prompt_tokens, cached_tokens=cached)
        for index in range(sampling.n):
            rng = seeded_rng(self.seed, sampling.seed, prompt_text, index)
            structured = draft_structured(request, rng, max_tokens=cap)
            draft = structured or draft_choice(rng, max_tokens=cap, stop=sampling.stop)
            run.sequences.append(
                _Sequence(
                    run=run,
                    index=index,
                    draft=draft,
                    prompt_tokens=prompt_tokens if index == 0 else 0,
                    prefill_tokens=prompt_tokens - cached if index == 0 else 0,
                    top_logprobs=(sampling.top_logprobs or 0) if asked_logprobs else None,
                    logprob_rng=seeded_rng("logprobs", self.seed, sampling.seed, prompt_text, index)
                    if asked_logprobs
                    else None,
                )
            )
        self._waiting.extend(run.sequences)
        self._wakeup.set()
        return run

    def _prompt(self, request: GenerationRequest) -> tuple[str, list[str] | list[int]]:
        """The prompt as text (for seeding) and its tokens, after the chat template."""
        if request.model != self.served_model:
            raise UpstreamRejected(
                f"model {request.model!r} is not served here (serving {self.served_model!r})",
                status=404,
                param="model",
            )
        if request.kind == "chat":
            if not request.messages:
                raise UpstreamRejected("messages must not be empty", param="messages")
            text = render_chat(request.messages, request.tools)
            return text, tokenize(text)
        if request.prompt is None:
            raise UpstreamRejected("prompt is required", param="prompt")
        if isinstance(request.prompt, str):
            return request.prompt, tokenize(request.prompt)
        return ",".join(str(t) for t in request.prompt), list(request.prompt)

    # -- the engine --------------------------------------------------------------

    def _serving(self) -> bool:
        return not self._killed and self._scheduler is not None and not self._scheduler.done()

    async def _schedule(self) -> None:
        """The engine loop: admit, sleep one step, hand every running sequence a token."""
        # how far the engine is behind its timeline: asyncio oversleeps by ~0.1-1 ms
        # a step, which would inflate short (H100-class) steps by 5-15% if not repaid
        lag = 0.0
        try:
            while True:
                if not self._running and not self._waiting:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    lag = 0.0
                    continue
                prefill_tokens = self._admit()
                if not self._running:
                    continue
                step_s = self.profile.step_time_s(len(self._running))
                step_s += self.profile.prefill_time_s(prefill_tokens)
                if self.jitter:
                    step_s *= 1 + self._jitter_rng.uniform(-self.jitter, self.jitter)
                want = step_s * self.time_scale
                started = time.perf_counter()
                await self._sleep(max(0.0, want - lag))
                # repay at most _MAX_LAG_S, so a stalled event loop is not made up for forever
                lag = min(max(0.0, lag + time.perf_counter() - started - want), _MAX_LAG_S)
                self._advance()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # a bug in the double must fail its callers, not leave them waiting forever
            self.crash = exc
            self._fail_all(f"simulated engine crashed: {exc!r}")

    def _admit(self) -> int:
        """Move waiting sequences into the batch (FIFO) while slots and KV allow."""
        held = sum(s.kv_tokens for s in self._running)
        prefill = 0
        while self._waiting and len(self._running) < self.profile.max_batch:
            seq = self._waiting[0]
            # an empty batch always admits, so one huge prompt cannot stall the engine
            if self._running and held + seq.prompt_tokens > self.kv_capacity_tokens:
                break
            self._waiting.popleft()
            self._running.append(seq)
            held += seq.prompt_tokens
            prefill += seq.prefill_tokens
        return prefill

    def _advance(self) -> None:
        """End of a step: one token for every running sequence, one chunk per request."""
        chunks: dict[_Run, list[ChoiceDelta]] = {}
        still_running = []
        for seq in self._running:
            chunks.setdefault(seq.run, []).append(seq.next_delta())
            if not seq.done:
                still_running.append(seq)
        self._running = still_running
        for run, deltas in chunks.items():
            run.events.put_nowait(deltas)

    def _withdraw(self, run: _Run) -> None:
        """Take a request's sequences out of the engine (finished, closed early, or failed)."""
        if any(s.run is run for s in self._running):
            self._running = [s for s in self._running if s.run is not run]
        if any(s.run is run for s in self._waiting):
            self._waiting = deque(s for s in self._waiting if s.run is not run)

    def _fail_all(self, message: str) -> None:
        """Fail every in-flight request at once with ReplicaUnavailable."""
        runs = {s.run: None for s in (*self._running, *self._waiting)}
        self._running = []
        self._waiting.clear()
        for run in runs:
            run.error = ReplicaUnavailable(message)
            # wake the consumer; it checks ``error`` before reading the deltas
            run.events.put_nowait([])
