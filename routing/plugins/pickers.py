"""Pickers: choose one candidate from the scorers' values.

``max_score`` (llm-d's way): each scorer's values are normalised to 0..1 across the
candidates (1 best), weighted and summed; the highest total wins. ``ordered``:
scorers are compared in order, the next one only breaking ties of the previous
(weights unused) — the named presets that used to be hand-written sort keys are
this. Remaining ties go to the lowest replica id (``tie: id``) or rotate through
the tied replicas per model (``tie: rotate``), so equal replicas share the load.
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.plugins.base import Context, Scorer
from routing.replica import Replica

_TIES = ("id", "rotate")
_EPSILON = 1e-12


def rotation_pick(candidates: Sequence[Replica], after: str | None) -> Replica:
    """The candidate whose id follows ``after`` in sorted order (wrapping), so ties
    rotate fairly even as the candidate set changes."""
    ordered = sorted(candidates, key=lambda r: r.id)
    if after is not None:
        for replica in ordered:
            if replica.id > after:
                return replica
    return ordered[0]


class _TieBreak:
    def __init__(self, tie: str) -> None:
        if tie not in _TIES:
            raise ValueError(f"tie must be one of {', '.join(_TIES)}")
        self.tie = tie
        self._last: dict[str, str] = {}

    def _break(self, tied: list[Replica], ctx: Context) -> Replica:
        if self.tie == "id":
            return min(tied, key=lambda r: r.id)
        replica = rotation_pick(tied, self._last.get(ctx.route.model))
        self._last[ctx.route.model] = replica.id
        return replica


class Ordered(_TieBreak):
    name = "ordered"

    def __init__(self, *, tie: str = "id") -> None:
        super().__init__(tie)

    def pick(
        self, candidates: list[Replica], values: list[list[float]], scorers: Sequence[tuple[Scorer, float]], ctx: Context
    ) -> Replica:
        signs = [1.0 if scorer.lower_is_better else -1.0 for scorer, _ in scorers]
        keys = [tuple(sign * column[i] for sign, column in zip(signs, values)) for i in range(len(candidates))]
        best = min(keys)
        tied = [c for c, key in zip(candidates, keys) if key == best]
        return self._break(tied, ctx)


class MaxScore(_TieBreak):
    name = "max_score"

    def __init__(self, *, tie: str = "rotate") -> None:
        super().__init__(tie)

    def pick(
        self, candidates: list[Replica], values: list[list[float]], scorers: Sequence[tuple[Scorer, float]], ctx: Context
    ) -> Replica:
        totals = [0.0] * len(candidates)
        for (scorer, weight), column in zip(scorers, values):
            for i, score in enumerate(normalised(column, lower_is_better=scorer.lower_is_better)):
                totals[i] += weight * score
        best = max(totals, default=0.0)
        tied = [c for c, total in zip(candidates, totals) if total >= best - _EPSILON]
        return self._break(tied, ctx)


def normalised(values: list[float], *, lower_is_better: bool) -> list[float]:
    """Scores in 0..1, 1 for the best value (all 1 when the values are equal; inf counts as worst)."""
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    if not finite:
        return [1.0] * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for v in values:
        if v != v or abs(v) == float("inf"):
            worst_is_inf = (v > 0) == lower_is_better
            out.append(0.0 if worst_is_inf else 1.0)
            continue
        share = 0.0 if span == 0 else (v - low) / span
        out.append(1.0 - share if lower_is_better else share)
    return out
