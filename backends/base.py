"""The one contract between the gateway and a model replica.

Backends receive a :class:`GenerationRequest` (not the HTTP schema: the gateway
translates) and answer with a :class:`Completion` or a stream of
:class:`StreamChunk`; an :class:`EmbeddingRequest` is answered with
:class:`Embeddings`. Usage is always what the engine itself counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

RequestKind = Literal["chat", "completion"]


@dataclass(slots=True, frozen=True)
class Sampling:
    """Sampling parameters, named as in the OpenAI API."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    #: token id -> bias in [-100, 100], added to the logits before sampling
    logit_bias: dict[int, float] | None = None


@dataclass(slots=True, frozen=True)
class Attribution:
    """What the client said about who a request is for. Recorded, never generation input.

    ``safety_identifier`` and ``prompt_cache_key`` (else ``user``) are stable
    per end user or per shared prefix: the plan may use them as a routing-affinity key.
    """

    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    #: the tier asked for; the response says which one served it
    service_tier: str | None = None

    @property
    def affinity_key(self) -> str | None:
        """The client's own grouping of requests that share a prompt prefix or an end user."""
        return self.prompt_cache_key or self.safety_identifier or self.user


@dataclass(slots=True)
class GenerationRequest:
    """One request as a backend sees it.

    ``model`` is the served model name of the replica (aliases already resolved).
    ``tools`` are OpenAI tool objects (``function`` and ``custom``); ``tool_choice``
    is OpenAI's (``"auto"``, ``"none"``, ``"required"``, a named tool, or
    ``allowed_tools``), None when the client sent none. ``passthrough`` holds the
    standard fields that no in-process engine acts on (``verbosity``,
    ``web_search_options``, ``prediction``, ...) exactly as the client sent them, for
    upstreams that speak OpenAI. ``extra`` holds fields the OpenAI schema does not
    define (e.g. vLLM's ``top_k``); only backends with ``capabilities.extra_params``
    receive them.
    """

    request_id: str
    model: str
    kind: RequestKind
    sampling: Sampling = field(default_factory=Sampling)
    messages: list[dict[str, Any]] | None = None
    prompt: str | list[int] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool = True
    reasoning_effort: str | None = None
    attribution: Attribution = field(default_factory=Attribution)
    passthrough: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> str | None:
        return self.attribution.user

    @property
    def tool_calling(self) -> bool:
        """Whether the model may call a tool (tools given and tool_choice is not "none")."""
        return bool(self.tools) and self.tool_choice != "none"


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts as reported by the engine (or estimated, when ``estimated``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Choice:
    """One finished choice of a non-streaming completion.

    ``tool_calls`` are OpenAI tool-call objects (``id``, ``type``, ``function``
    with ``name`` and ``arguments`` as a JSON string).
    """

    index: int
    text: str
    finish_reason: str | None
    logprobs: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    #: the stop string that ended the choice (finish reason ``stop``), when the engine says which
    stop_sequence: str | None = None


@dataclass(slots=True)
class Completion:
    """A finished, non-streaming generation. ``usage`` is None when the backend
    reported none (the gateway then estimates it and flags the record)."""

    choices: list[Choice]
    usage: Usage | None


@dataclass(slots=True)
class ChoiceDelta:
    """New text for one choice of a stream.

    ``tokens`` is how many generated tokens this delta carries, when the
    backend knows it; the meter uses it to bill a stream cut short.
    ``tool_calls`` are OpenAI's streamed tool-call deltas: the first for a call
    carries ``index``, ``id``, ``type`` and ``function.name``; later ones carry
    ``index`` and the next piece of ``function.arguments``.
    """

    index: int
    text: str = ""
    finish_reason: str | None = None
    tokens: int | None = None
    logprobs: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    #: the stop string that ended the choice, on its finishing delta, when the engine says which
    stop_sequence: str | None = None


@dataclass(slots=True)
class StreamChunk:
    """One step of a stream: deltas, and on the last step the usage."""

    deltas: list[ChoiceDelta]
    usage: Usage | None = None


@dataclass(slots=True)
class EmbeddingRequest:
    """Texts (or token-id lists) to embed, one vector each, in order.

    ``dimensions`` asks for shorter vectors (models trained for it only: a
    backend refuses it otherwise rather than truncate a vector that was not
    trained to be truncated).
    """

    request_id: str
    model: str
    inputs: list[str | list[int]]
    dimensions: int | None = None
    attribution: Attribution = field(default_factory=Attribution)


@dataclass(slots=True)
class Embeddings:
    """One vector per input, in input order. ``usage.prompt_tokens`` is every input's tokens."""

    vectors: list[list[float]]
    usage: Usage | None


@dataclass(slots=True, frozen=True)
class EngineStats:
    """Live telemetry a backend reports for routing. ``None`` means unknown."""

    running: int | None = None
    waiting: int | None = None
    kv_cache_usage: float | None = None


@dataclass(slots=True, frozen=True)
class Capabilities:
    """What a backend honours beyond plain text generation.

    The gateway refuses (400) a request field that no replica of the model can
    honour where ignoring it would change the answer; see ``gateway.chat_fields``.
    """

    #: function tools: ``tools``, ``tool_choice``, ``parallel_tool_calls`` (and legacy ``functions``)
    tools: bool = False
    #: tools of type ``custom`` (free-form or grammar-constrained text input)
    custom_tools: bool = False
    #: ``response_format`` ``json_object`` / ``json_schema``
    structured_outputs: bool = False
    #: audio output (``modalities`` with ``"audio"``, ``audio``)
    audio_output: bool = False
    #: ``web_search_options``
    web_search: bool = False
    #: ``moderation`` of input and output
    moderation: bool = False
    #: fields outside the OpenAI schema (``GenerationRequest.extra``)
    extra_params: bool = False
    #: ``embed``: vectors for texts
    embeddings: bool = False

    def covers(self, needed: Iterable[str]) -> bool:
        """Whether every named capability is here (names are this class's fields)."""
        return all(getattr(self, name) for name in needed)

    def refuse_unsupported(self, request: GenerationRequest) -> None:
        """Raise UpstreamRejected for a request field this backend would otherwise ignore.

        The gateway refuses such fields before routing when no replica has the
        capability; this guards a replica that was chosen in a pool where another has it.
        """
        for capability, field_name in capabilities_used(request).items():
            if not getattr(self, capability):
                raise UpstreamRejected(
                    f"'{field_name}' is not supported by this replica; it is refused rather than ignored.",
                    param=field_name,
                )


def capabilities_used(request: GenerationRequest) -> dict[str, str]:
    """The capabilities (``Capabilities`` field names) a request uses, each with the field that uses it."""
    used: dict[str, str] = {}
    if request.tool_calling:
        kinds = {tool.get("type") for tool in request.tools or ()}
        if "function" in kinds:
            used["tools"] = "tools"
        if "custom" in kinds:
            used["custom_tools"] = "tools"
    if request.response_format and request.response_format.get("type") not in (None, "text"):
        used["structured_outputs"] = "response_format"
    passed = request.passthrough
    if "audio" in (passed.get("modalities") or ()):
        used["audio_output"] = "modalities"
    elif passed.get("audio") is not None:
        used["audio_output"] = "audio"
    if passed.get("web_search_options") is not None:
        used["web_search"] = "web_search_options"
    if passed.get("moderation") is not None:
        used["moderation"] = "moderation"
    if request.extra:
        used["extra_params"] = next(iter(request.extra))
    return used


class BackendError(Exception):
    """Base of backend failures. ``retryable`` failures may go to another replica."""

    status: int = 502
    retryable: bool = True
    code: str = "upstream_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ReplicaUnavailable(BackendError):
    """The replica cannot serve now: connection refused, engine dead, upstream 5xx."""

    status = 503
    code = "replica_unavailable"


class UpstreamTimeout(BackendError):
    """The replica did not answer in time."""

    status = 504
    code = "upstream_timeout"


class UpstreamRateLimited(BackendError):
    """The replica said 429; ``retry_after`` says for how long it is busy."""

    status = 429
    code = "upstream_rate_limited"


class UpstreamRejected(BackendError):
    """The replica refused the request itself (4xx): retrying elsewhere won't help."""

    retryable = False
    code = "invalid_request"

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@runtime_checkable
class Backend(Protocol):
    """A model replica the gateway can send requests to."""

    #: what it honours beyond plain text (``extra_params``: fields outside the OpenAI schema)
    capabilities: Capabilities

    async def start(self) -> None:
        """Connect / load; return when ready to serve (or raise)."""

    async def close(self) -> None:
        """Release resources; in-flight requests end with ReplicaUnavailable."""

    async def generate(self, request: GenerationRequest) -> Completion:
        """Run a request to completion."""

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Run a request, yielding chunks; the last chunk carries ``usage``.

        Closing the iterator early (client gone) must abort the work upstream.
        """

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """Vectors for the request's inputs; UpstreamRejected when this replica does not embed."""

    async def health(self) -> bool:
        """Cheap liveness probe."""

    def stats(self) -> EngineStats:
        """Latest engine telemetry (may be cached; never blocks)."""

    def context_length(self) -> int | None:
        """The replica's context window in tokens (prompt + output), None while unknown."""
