"""The one contract between the gateway and a model replica.

Backends receive a :class:`GenerationRequest` (not the HTTP schema: the gateway
translates) and answer with a :class:`Completion` or a stream of
:class:`StreamChunk`. Usage is always what the engine itself counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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


@dataclass(slots=True)
class GenerationRequest:
    """One request as a backend sees it.

    ``model`` is the served model name of the replica (aliases already resolved).
    ``extra`` holds fields the OpenAI schema does not define (e.g. vLLM's
    ``top_k``); only backends with ``accepts_extra`` receive them.
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
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
    """One finished choice of a non-streaming completion."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: Any = None
    tool_calls: list[dict[str, Any]] | None = None


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
    """

    index: int
    text: str = ""
    finish_reason: str | None = None
    tokens: int | None = None
    logprobs: Any = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class StreamChunk:
    """One step of a stream: deltas, and on the last step the usage."""

    deltas: list[ChoiceDelta]
    usage: Usage | None = None


@dataclass(slots=True, frozen=True)
class EngineStats:
    """Live telemetry a backend reports for routing. ``None`` means unknown."""

    running: int | None = None
    waiting: int | None = None
    kv_cache_usage: float | None = None


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

    #: whether unknown request fields (``GenerationRequest.extra``) are understood
    accepts_extra: bool

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

    async def health(self) -> bool:
        """Cheap liveness probe."""

    def stats(self) -> EngineStats:
        """Latest engine telemetry (may be cached; never blocks)."""
