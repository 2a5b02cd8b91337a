"""The one place a replica's config becomes a Backend."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from backends.base import Backend
from backends.chips import CHIPS, ChipProfile

if TYPE_CHECKING:
    from backends.settings import ReplicaConfig


def profile_for(chip: str) -> ChipProfile | None:
    """The chip's performance profile, if the catalog knows the chip."""
    return CHIPS.get(chip)


def build_backend(replica: ReplicaConfig, *, max_model_len: int | None = None, embedding: bool = False) -> Backend:
    """Construct (not start) the backend a replica config describes.

    ``max_model_len`` is the model's context window, when the config states one; a
    simulated replica otherwise enforces the window its model's card publishes.
    ``embedding``: the model is an embedding model (an in-process engine then runs
    vLLM's pooling runner, by default on the bundled all-MiniLM-L6-v2).
    """
    if replica.backend == "simulated":
        from backends.model_cards import card_context_length
        from backends.simulated import SimulatedBackend

        profile = profile_for(replica.chip)
        if profile is None:
            known = ", ".join(sorted(CHIPS))
            raise ValueError(f"replica {replica.id}: simulated backend needs a known chip, one of: {known}")
        return SimulatedBackend(
            profile,
            replica.model,
            time_scale=replica.time_scale,
            seed=replica.seed,
            max_model_len=max_model_len or card_context_length(replica.model),
        )
    if replica.backend == "openai":
        from backends.openai_upstream import OpenAIUpstreamBackend

        api_key = os.environ.get(replica.api_key_env) if replica.api_key_env else None
        return OpenAIUpstreamBackend(
            replica.id,
            replica.url or "",
            replica.upstream_model or replica.model,
            api_key=api_key,
            timeout_s=replica.timeout_s,
            connect_timeout_s=replica.connect_timeout_s,
            metrics_url=replica.metrics_url,
        )
    if replica.backend == "vllm" and embedding:
        from backends.bundled_embedding import bundled_embedding_path
        from backends.vllm_embedding import VllmEmbeddingBackend

        assert replica.engine is not None
        path = replica.engine.model_path or bundled_embedding_path()
        if path is None:
            raise ValueError(
                f"replica {replica.id}: no engine.model_path and the bundled embedding model is not prepared "
                "(run `maas models prepare`)"
            )
        return VllmEmbeddingBackend(replica.id, replica.model, replica.engine, model_path=str(path))
    if replica.backend == "vllm":
        from backends.bundled_model import bundled_model_path
        from backends.vllm_engine import VllmEngineBackend

        assert replica.engine is not None
        model_path = replica.engine.model_path or bundled_model_path()
        if model_path is None:
            raise ValueError(
                f"replica {replica.id}: no engine.model_path and the bundled model is not prepared "
                "(run `maas models prepare`)"
            )
        return VllmEngineBackend(replica.id, replica.model, replica.engine, model_path=str(model_path))
    raise ValueError(f"replica {replica.id}: unknown backend {replica.backend!r}")
