"""Routing policies: named presets or compositions, built in one place."""

from __future__ import annotations

from routing.plugins import build
from routing.policies.base import Decision, RoutingPolicy
from routing.policies.composed import ComposedPolicy, Profile
from routing.policies.presets import PRESETS
from routing.settings import SLO, PolicySpec, ProfileSpec

POLICY_NAMES: tuple[str, ...] = tuple(PRESETS)


def make_policy(spec: str | PolicySpec, *, slo: SLO) -> RoutingPolicy:
    """A fresh policy from a preset name or a composition; ValueError naming what is wrong."""
    if isinstance(spec, str):
        preset = PRESETS.get(spec)
        if preset is None:
            raise ValueError(f"unknown routing policy {spec!r}; choose one of: {', '.join(POLICY_NAMES)}")
        return preset(slo)
    profiles = {None: _profile(spec)}
    if spec.prefer_cost is not None:
        profiles["cost"] = _profile(spec.prefer_cost)
    if spec.prefer_latency is not None:
        profiles["latency"] = _profile(spec.prefer_latency)
    return ComposedPolicy("composed", profiles, slo=slo)


def _profile(spec: ProfileSpec) -> Profile:
    return Profile(
        reason=spec.reason,
        filters=tuple(build("filter", f.name, f.params) for f in spec.filters),
        scorers=tuple((build("scorer", s.name, s.params), s.weight) for s in spec.scorers),
        picker=build("picker", spec.picker.name, spec.picker.params),
        fallback=None if spec.fallback is None else _profile(spec.fallback),
        predictions="pooled",
    )


__all__ = ["POLICY_NAMES", "ComposedPolicy", "Decision", "RoutingPolicy", "make_policy"]
