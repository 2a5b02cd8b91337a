"""The exact cheapest-mix solver (routing.fleet.solver) against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.fleet.solver import MixOption, cheapest_mix


def brute_force(options: list[MixOption], demand: float) -> int | None:
    """The cheapest cost over every combination of counts (None: none covers)."""
    best = None
    for counts in itertools.product(*(range(o.low, o.high + 1) for o in options)):
        capacity = sum(o.capacity * n for o, n in zip(options, counts, strict=True))
        if capacity >= demand - 1e-9 * max(1.0, demand):
            cost = sum(o.cost * n for o, n in zip(options, counts, strict=True))
            best = cost if best is None else min(best, cost)
    return best


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[MixOption], float]:
    options = []
    for i in range(draw(st.integers(1, 4))):
        low = draw(st.integers(0, 2))
        capacity = draw(st.one_of(st.just(0.0), st.floats(0.1, 30.0)))
        options.append(MixOption(f"o{i}", capacity, draw(st.integers(0, 5_000_000)), low, low + draw(st.integers(0, 4))))
    return options, draw(st.floats(0.0, 120.0))


@settings(max_examples=400, deadline=None)
@given(instances())
def test_the_solver_finds_the_brute_force_optimum(instance: tuple[list[MixOption], float]):
    options, demand = instance

    mix = cheapest_mix(options, demand)

    best = brute_force(options, demand)
    if best is None:
        assert mix is None
        return
    assert mix is not None
    assert mix.cost == best
    assert mix.capacity >= demand - 1e-6
    for option in options:
        assert option.low <= mix.counts[option.key] <= option.high
    assert mix.cost == sum(o.cost * mix.counts[o.key] for o in options)


def test_two_small_units_beat_one_big_one_when_they_cover_for_less():
    options = [MixOption("big", 20.0, 4_000_000, 0, 4), MixOption("small", 6.0, 1_000_000, 0, 4)]

    mix = cheapest_mix(options, 9.6)

    assert mix is not None and dict(mix.counts) == {"big": 0, "small": 2}


def test_a_demand_beyond_every_option_at_its_high_has_no_mix():
    assert cheapest_mix([MixOption("a", 5.0, 1, 0, 2)], 10.5) is None


def test_lows_are_kept_even_when_nothing_is_needed():
    mix = cheapest_mix([MixOption("a", 5.0, 7, 2, 4)], 0.0)

    assert mix is not None and dict(mix.counts) == {"a": 2} and mix.cost == 14


def test_options_must_be_well_formed():
    with pytest.raises(ValueError, match="low <= high"):
        MixOption("a", 1.0, 1, 3, 2)
    with pytest.raises(ValueError, match="unique"):
        cheapest_mix([MixOption("a", 1.0, 1, 0, 1), MixOption("a", 2.0, 1, 0, 1)], 1.0)
