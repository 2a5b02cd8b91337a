"""The pieces routing is composed of, in the style of llm-d's scheduler: filters, scorers, a picker.

For one request, a policy hands its candidates (routable replicas of the model)
to a profile: each **filter** keeps some of them; each **scorer** gives every
survivor a value; the **picker** chooses from the values (a weighted sum of
normalised scores, or scorers compared in order). Everything a plugin may need
about a candidate — above all its predicted TTFT/TPOT — is computed once per
request in the shared :class:`Context`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from routing.prediction import Prediction, pooled_output_tokens, predict
from routing.replica import Replica
from routing.route import RouteRequest
from routing.settings import SLO


@dataclass(slots=True)
class Limits:
    """The latency a request must meet: the SLO, the caller's ``max_ttft_ms``, headroom and slack."""

    ttft_slo_s: float
    tpot_slo_s: float
    ttft_limit_s: float
    tpot_limit_s: float


@dataclass(slots=True)
class Context:
    """What the plugins share while one request is placed."""

    route: RouteRequest
    now: float
    candidates: Sequence[Replica]
    #: the typical prompt of this model (an EWMA the policy keeps)
    prompt_mean: float
    #: the SLO the policy was built with
    slo: SLO
    #: why the last filter left nothing (used in the decision's reason)
    why_empty: str = ""
    _pooled_output: float | None = None
    _pooled: dict[str, Prediction] = field(default_factory=dict)
    _own: dict[str, Prediction] = field(default_factory=dict)

    @property
    def pooled_output(self) -> float:
        """Output tokens to expect, one estimate for every candidate (comparisons stay fair)."""
        if self._pooled_output is None:
            self._pooled_output = pooled_output_tokens(self.candidates, self.route)
        return self._pooled_output

    def prediction(self, replica: Replica) -> Prediction:
        """The request predicted on ``replica`` with the pooled output length."""
        found = self._pooled.get(replica.id)
        if found is None:
            found = self._pooled[replica.id] = predict(replica, self.route, output_tokens=self.pooled_output)
        return found

    def own_prediction(self, replica: Replica) -> Prediction:
        """The request predicted on ``replica`` with that replica's own typical output length."""
        found = self._own.get(replica.id)
        if found is None:
            found = self._own[replica.id] = predict(replica, self.route)
        return found

    def limits(self, *, ttft_headroom: float, tpot_headroom: float, slack: float) -> Limits:
        ttft_slo = (self.route.preference.max_ttft_ms or self.slo.ttft_ms) / 1000.0
        tpot_slo = self.slo.tpot_ms / 1000.0
        return Limits(ttft_slo, tpot_slo, ttft_slo * ttft_headroom * slack, tpot_slo * tpot_headroom * slack)


class Filter(Protocol):
    """Keeps the candidates that may serve; may keep none (and say why in ``ctx.why_empty``)."""

    name: str

    def filter(self, candidates: list[Replica], ctx: Context) -> list[Replica]: ...


class Scorer(Protocol):
    """One value per candidate. ``lower_is_better`` says which way is good."""

    name: str
    lower_is_better: bool

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]: ...


class Picker(Protocol):
    """Chooses one candidate from the scorers' values (``weights`` align with ``values``)."""

    name: str

    def pick(
        self, candidates: list[Replica], values: list[list[float]], scorers: Sequence[tuple[Scorer, float]], ctx: Context
    ) -> Replica: ...
