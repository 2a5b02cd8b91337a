"""A model's context window (prompt + output tokens), from what its replicas report.

Each replica's window comes from its backend (the vLLM engine's ``max_model_len``,
an upstream's ``GET /models``, a simulated chip's model card) or, where the backend
reports none, from the model's ``max_model_len`` in the config. A request may land
on any replica, so the model's window is the smallest of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from backends.base import Backend


def model_context_length(configured: int | None, backends: Iterable[Backend]) -> int | None:
    """The smallest window of the model's replicas; ``configured`` stands in for a replica that reports none."""
    windows = [backend.context_length() or configured for backend in backends]
    known = [w for w in windows if w is not None]
    if known:
        return min(known)
    return configured
