"""How an answer is written for one API surface: the seam between serving and each surface.

Serving runs every request the same way (plan, admit, route, settle) and asks a
per-request :class:`Renderer` for the bytes: a JSON body for a complete answer;
SSE frames for each stream chunk, for the end (with the billed usage) and for a
failure after the first byte. Chat and completions render OpenAI's shapes;
Responses and Messages render their own event sequences.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from backends.base import Completion, StreamChunk, Usage
from gateway.errors import APIError
from gateway.openai_format import DONE_FRAME, ChunkWriter, ResponseStyle, completion_body, error_frame


class Renderer(Protocol):
    """Writes one request's answer in its surface's format."""

    def body(self, completion: Completion, usage: Usage, cost_usd: Decimal) -> Any:
        """The JSON body of a complete (non-streamed) answer."""

    def frames(self, chunk: StreamChunk) -> list[bytes]:
        """SSE frames for one stream chunk (may be empty)."""

    def end(self, usage: Usage, cost_usd: Decimal) -> list[bytes]:
        """The closing frames of a stream that ran to its end."""

    def error(self, error: APIError) -> list[bytes]:
        """Frames telling the client the stream failed after it started."""


class OpenAIRenderer:
    """``chat.completion`` / ``text_completion`` objects and their chunk streams."""

    __slots__ = ("_kind", "_response_id", "_created", "_model", "_include_usage", "_style", "_writer")

    def __init__(
        self, kind: str, response_id: str, created: int, model: str, *, include_usage: bool,
        style: ResponseStyle | None = None,
    ) -> None:
        self._kind = kind
        self._style = style or ResponseStyle()
        self._response_id = response_id
        self._created = created
        self._model = model
        self._include_usage = include_usage
        self._writer: ChunkWriter | None = None

    def body(self, completion: Completion, usage: Usage, cost_usd: Decimal) -> Any:
        return completion_body(
            self._kind, self._response_id, self._created, self._model, completion, usage, cost_usd, self._style
        )

    def frames(self, chunk: StreamChunk) -> list[bytes]:
        if self._writer is None:
            self._writer = ChunkWriter(
                self._kind, self._response_id, self._created, self._model, self._include_usage, self._style
            )
        return self._writer.frames(chunk)

    def end(self, usage: Usage, cost_usd: Decimal) -> list[bytes]:
        if not self._include_usage:
            return [DONE_FRAME]
        if self._writer is None:
            self._writer = ChunkWriter(
                self._kind, self._response_id, self._created, self._model, self._include_usage, self._style
            )
        return [self._writer.usage_frame(usage, cost_usd), DONE_FRAME]

    def error(self, error: APIError) -> list[bytes]:
        return [error_frame(error.body())]
