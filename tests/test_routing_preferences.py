"""Routing preferences: parsed strictly, suffixes understood, nonsense refused."""

from __future__ import annotations

import pytest

from routing.preferences import InvalidPreference, RoutingPreference, chip_matches, parse_preference


def test_plain_model_has_no_preference():
    assert parse_preference("llama-3.1-8b", None) == ("llama-3.1-8b", RoutingPreference())


def test_cheap_suffix_prefers_cost():
    assert parse_preference("llama-3.1-8b:cheap", None) == ("llama-3.1-8b", RoutingPreference(prefer="cost"))


def test_fast_suffix_prefers_latency():
    assert parse_preference("m:fast", None) == ("m", RoutingPreference(prefer="latency"))


def test_other_colons_in_a_model_name_are_kept():
    assert parse_preference("qwen3:8b", None) == ("qwen3:8b", RoutingPreference())


def test_routing_body_sets_all_three_fields():
    model, pref = parse_preference("m", {"prefer": "latency", "chips": ["NVIDIA-H100", "ascend"], "max_ttft_ms": 250})
    assert model == "m"
    assert pref == RoutingPreference(prefer="latency", chips=("nvidia-h100", "ascend"), max_ttft_ms=250.0)


def test_suffix_and_matching_body_preference_combine():
    _, pref = parse_preference("m:cheap", {"prefer": "cost", "chips": ["kunlun"]})
    assert pref == RoutingPreference(prefer="cost", chips=("kunlun",))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("fast", "routing"),
        ({"prefer": "cheapest"}, "routing.prefer"),
        ({"chips": "nvidia"}, "routing.chips"),
        ({"chips": []}, "routing.chips"),
        ({"chips": [""]}, "routing.chips"),
        ({"chips": [3]}, "routing.chips"),
        ({"max_ttft_ms": 0}, "routing.max_ttft_ms"),
        ({"max_ttft_ms": -5}, "routing.max_ttft_ms"),
        ({"max_ttft_ms": "100"}, "routing.max_ttft_ms"),
        ({"max_ttft_ms": True}, "routing.max_ttft_ms"),
        ({"max_ttft_ms": float("nan")}, "routing.max_ttft_ms"),
        ({"region": "eu"}, "routing.region"),
    ],
)
def test_malformed_routing_body_is_refused_naming_the_field(body, param):
    with pytest.raises(InvalidPreference) as caught:
        parse_preference("m", body)
    assert caught.value.param == param
    assert caught.value.message


def test_suffix_contradicting_body_preference_is_refused():
    with pytest.raises(InvalidPreference) as caught:
        parse_preference("m:cheap", {"prefer": "latency"})
    assert caught.value.param == "routing.prefer"


def test_chip_matches_exact_name_or_vendor_family():
    assert chip_matches("nvidia-h100", ("nvidia",))
    assert chip_matches("nvidia-h100", ("nvidia-h100",))
    assert not chip_matches("nvidia-h100", ("nvidia-h1",))
    assert not chip_matches("ascend-910b", ("nvidia", "kunlun"))
