"""Deterministic vectors for the simulated double's embeddings: feature hashing of words.

TEST DOUBLE, not a model. Each lower-cased word (or token id) is a fixed
pseudo-random direction, seeded by the word; a text's vector is the normalised
sum of its words' directions. The same text always gives the same vector, and
texts sharing words point the same way, so retrieval code behaves plausibly in
tests. ``dimensions`` keeps the first components and normalises again, the way
a Matryoshka-trained model is truncated.
"""

from __future__ import annotations

import math
import re

from backends.sim_text import seeded_rng

#: the double's vector length when the client asks for none
SIM_EMBEDDING_DIMENSIONS = 384
_WORD = re.compile(r"\w+", re.UNICODE)


def sim_embedding(item: str | list[int], *, seed: int, dimensions: int | None = None) -> list[float]:
    """The double's unit vector for a text or a list of token ids."""
    size = dimensions or SIM_EMBEDDING_DIMENSIONS
    words = [w.lower() for w in _WORD.findall(item)] if isinstance(item, str) else [str(t) for t in item]
    total = [0.0] * SIM_EMBEDDING_DIMENSIONS
    for word in words or [""]:
        rng = seeded_rng("sim-embedding", seed, word)
        for i in range(SIM_EMBEDDING_DIMENSIONS):
            total[i] += rng.gauss(0.0, 1.0)
    kept = total[:size]
    norm = math.sqrt(sum(x * x for x in kept)) or 1.0
    return [x / norm for x in kept]
