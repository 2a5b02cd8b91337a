"""An embedding replica: an in-process vLLM engine on its pooling runner.

The same supervision as the chat engine (:class:`backends.vllm_supervisor.EngineSupervisor`:
built off the loop, watched, restarted); a second, separate engine, because vLLM
runs a model either to generate or to pool. Each input is one engine request
(vLLM batches them); usage is the engine's own count of every input's tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from backends.base import (
    BackendError,
    Capabilities,
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

if TYPE_CHECKING:
    from backends.settings import EngineConfig


class VllmEmbeddingBackend(SupervisedVllmReplica):
    """A replica of an embedding model served by vLLM's pooling runner (``backend: vllm``)."""

    capabilities = Capabilities(embeddings=True)

    def __init__(self, replica_id: str, served_model: str, engine: EngineConfig, *, model_path: str) -> None:
        super().__init__(replica_id, served_model, engine, model_path=model_path)
        self._names: Any = None
        self._open = 0

    def _open_requests(self) -> bool:
        return self._open > 0

    def _build_engine(self) -> Any:
        from vllm import PoolingParams
        from vllm.exceptions import VLLMValidationError
        from vllm.inputs import tokens_input

        self._names = (PoolingParams, tokens_input, VLLMValidationError)
        cfg = self.engine_config
        # the model's own input limit unless one is set (MiniLM: 256 tokens, from its sentence-transformers config)
        window = {"max_model_len": cfg.max_model_len} if "max_model_len" in cfg.model_fields_set else {}
        engine = self._build(runner="pooling", **window)
        return engine

    # ---- the request path ----------------------------------------------------

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        engine = self._supervisor.current()
        pooling_params, tokens_input, validation_error = self._names
        tokenizer = engine.get_tokenizer()
        window = engine.model_config.max_model_len
        prompts = [self._token_ids(tokenizer, item, i, window) for i, item in enumerate(request.inputs)]
        try:
            params = pooling_params(task="embed", dimensions=request.dimensions)
        except Exception as exc:  # noqa: BLE001 - vLLM's refusal of a parameter is the client's 400
            raise UpstreamRejected(str(exc), param="dimensions") from None
        self._open += 1
        try:
            outputs = await asyncio.gather(
                *(self._one(engine, tokens_input(ids), params, f"{request.request_id}-{i}") for i, ids in enumerate(prompts))
            )
        except validation_error as exc:
            # vLLM names no parameter when it refuses dimensions for a model not trained to be truncated
            param = getattr(exc, "parameter", None) or ("dimensions" if request.dimensions is not None else "input")
            raise UpstreamRejected(str(exc.args[0]) if exc.args else str(exc), param=param) from None
        except (BackendError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - every vLLM failure becomes a typed backend error
            if not self._supervisor.is_current(engine) or engine.errored:
                raise ReplicaUnavailable(f"replica {self.replica_id}: the vLLM engine stopped while embedding") from None
            raise BackendError(f"replica {self.replica_id}: vLLM engine error: {type(exc).__name__}: {exc}") from None
        finally:
            self._open -= 1
        vectors = [out.outputs.data.tolist() for out in outputs]
        tokens = sum(len(out.prompt_token_ids or ids) for out, ids in zip(outputs, prompts, strict=True))
        return Embeddings(vectors, Usage(prompt_tokens=tokens))

    @staticmethod
    async def _one(engine: Any, prompt: Any, params: Any, request_id: str) -> Any:
        final = None
        # vLLM aborts the request itself when this generator is cancelled (client gone)
        async for output in engine.encode(prompt, params, request_id):
            final = output
        assert final is not None
        return final

    @staticmethod
    def _token_ids(tokenizer: Any, item: str | list[int], index: int, window: int) -> list[int]:
        if isinstance(item, str):
            ids = list(tokenizer.encode(item, add_special_tokens=True))
        else:
            ids = list(item)
            vocab = len(tokenizer)
            if any(t < 0 or t >= vocab for t in ids):
                raise UpstreamRejected(f"input[{index}]: token ids must be in [0, {vocab}).", param="input")
        if len(ids) > window:
            raise UpstreamRejected(
                f"input[{index}] has {len(ids)} tokens; this model takes at most {window} tokens per input.",
                param="input",
            )
        return ids

    async def generate(self, request: GenerationRequest) -> Completion:
        raise UpstreamRejected(f"replica {self.replica_id} serves embeddings only; it does not generate text.")

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        raise UpstreamRejected(f"replica {self.replica_id} serves embeddings only; it does not generate text.")
        yield  # pragma: no cover - makes this an async generator
