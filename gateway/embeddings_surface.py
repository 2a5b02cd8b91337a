"""``POST /v1/embeddings``: OpenAI's request, the internal request, and the answer's body.

Input is a string, a list of strings, a list of token ids or a list of such
lists (at most 2048 inputs, none empty, as OpenAI's reference says);
``encoding_format`` ``float`` or ``base64`` (little-endian float32, what the
openai SDK asks for by default and decodes); ``dimensions`` is passed to the
replica, which refuses it (400) unless its model was trained to be truncated.
"""

from __future__ import annotations

import base64
import struct
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backends.base import Attribution, EmbeddingRequest, Embeddings, Usage

#: OpenAI's bound on inputs per request
MAX_INPUTS = 2048


class EmbeddingsBody(BaseModel):
    """The request body (``routing`` is the gateway's preference extension); unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    routing: dict[str, Any] | None = None

    @field_validator("input")
    @classmethod
    def _inputs_present(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("must not be empty")
        if len(items) > MAX_INPUTS and not all(isinstance(i, int) for i in items):
            raise ValueError(f"at most {MAX_INPUTS} inputs are allowed per request")
        for index, item in enumerate(items):
            if isinstance(item, (str, list)) and not item:
                raise ValueError(f"input {index} is empty")
            if isinstance(item, list) and any(t < 0 for t in item):
                raise ValueError(f"input {index} has a negative token id")
        if isinstance(items[0], int) and any(t < 0 for t in items):  # type: ignore[operator]
            raise ValueError("token ids must not be negative")
        return value

    def inputs(self) -> list[str | list[int]]:
        """One entry per vector asked for (a flat list of ints is one tokenized input)."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [list(value)]  # type: ignore[arg-type]
        return list(value)  # type: ignore[arg-type]


def embedding_request(body: EmbeddingsBody, request_id: str, served_model: str) -> EmbeddingRequest:
    return EmbeddingRequest(
        request_id=request_id,
        model=served_model,
        inputs=body.inputs(),
        dimensions=body.dimensions,
        attribution=Attribution(user=body.user),
    )


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class EmbeddingsRenderer:
    """OpenAI's ``list`` of ``embedding`` objects; an embeddings answer is never streamed."""

    __slots__ = ("_encoding", "_model")

    def __init__(self, model: str, encoding_format: str) -> None:
        self._model = model
        self._encoding = encoding_format

    def body(self, result: Embeddings, usage: Usage, cost_usd: Decimal) -> Any:
        encode = _base64 if self._encoding == "base64" else (lambda vector: vector)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(vector)} for i, vector in enumerate(result.vectors)
            ],
            "model": self._model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens, "cost": float(cost_usd)},
        }

    def frames(self, chunk: Any) -> list[bytes]:  # pragma: no cover - never streamed
        raise NotImplementedError("embeddings are not streamed")

    def end(self, usage: Usage, cost_usd: Decimal) -> list[bytes]:  # pragma: no cover
        raise NotImplementedError("embeddings are not streamed")

    def error(self, error: Any) -> list[bytes]:  # pragma: no cover
        raise NotImplementedError("embeddings are not streamed")
