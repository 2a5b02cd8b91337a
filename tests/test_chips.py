"""The chip catalog: profiles match the cited table, step times follow its linear model."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from backends.chips import CHIPS, ChipProfile, chip_profile

# chips.md §4: name, prefill tok/s, decode ms B=1, decode ms B=32, max batch, $/hour
TABLE = [
    ("nvidia-h100", 30_000, 7.0, 9.7, 256, "3.99"),
    ("nvidia-a100", 10_000, 11.5, 17.6, 256, "1.79"),
    ("nvidia-l4", 3_800, 76.0, 95.0, 24, "0.81"),
    ("amd-mi300x", 30_000, 4.5, 6.5, 512, "3.99"),
    ("ascend-910b", 9_000, 21.0, 29.0, 128, "1.50"),
    ("kunlun-p800", 12_800, 16.0, 23.0, 256, "1.50"),
    ("hygon-k100ai", 4_700, 30.0, 45.0, 128, "1.00"),
    ("cpu-xeon-amx", 1_000, 48.0, 95.0, 32, "3.00"),
    ("cpu-avx2", 300, 71.0, 320.0, 64, "0.08"),
]


@pytest.mark.parametrize(("name", "prefill", "d1", "d32", "max_batch", "cost"), TABLE)
def test_profiles_carry_the_numbers_of_the_cited_table(name, prefill, d1, d32, max_batch, cost):
    profile = chip_profile(name)
    assert profile.name == name
    assert profile.prefill_tok_s == prefill
    assert (profile.decode_ms_b1, profile.decode_ms_b32) == (d1, d32)
    assert profile.max_batch == max_batch
    assert profile.cost_per_hour == Decimal(cost)
    assert isinstance(profile.cost_per_hour, Decimal)


def test_every_profile_says_where_its_numbers_come_from():
    for profile in CHIPS.values():
        assert profile.vendor and profile.description
        assert profile.confidence and profile.sources


def test_catalog_holds_exactly_the_agreed_chips_and_the_cpu_alias():
    assert set(CHIPS) == {row[0] for row in TABLE} | {"cpu"}


def test_cpu_is_an_alias_of_the_xeon_amx_profile():
    assert chip_profile("cpu") is chip_profile("cpu-xeon-amx")
    assert chip_profile("cpu").name == "cpu-xeon-amx"


def test_unknown_chip_raises_key_error_listing_the_known_names():
    with pytest.raises(KeyError) as info:
        chip_profile("tpu-v5e")
    message = str(info.value)
    assert "tpu-v5e" in message
    for name in ("nvidia-h100", "ascend-910b", "cpu-avx2"):
        assert name in message


def test_catalog_is_read_only():
    with pytest.raises(TypeError):
        CHIPS["mine"] = chip_profile("nvidia-h100")  # type: ignore[index]


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        chip_profile("nvidia-h100").max_batch = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", [row[0] for row in TABLE if row[4] >= 32])
def test_step_time_hits_the_batch_1_and_batch_32_points(name):
    profile = chip_profile(name)
    assert profile.step_time_s(1) == pytest.approx(profile.decode_ms_b1 / 1000)
    assert profile.step_time_s(32) == pytest.approx(profile.decode_ms_b32 / 1000)


def test_step_time_is_linear_between_and_beyond_the_reference_points():
    h100 = chip_profile("nvidia-h100")
    slope_s = (9.7 - 7.0) / 31 / 1000
    assert h100.step_time_s(16) == pytest.approx(0.007 + 15 * slope_s)
    assert h100.step_time_s(64) == pytest.approx(0.007 + 63 * slope_s)
    steps = [h100.step_time_s(b) for b in range(1, 100)]
    assert steps == sorted(steps)


def test_step_time_clamps_the_batch_to_max_batch():
    l4 = chip_profile("nvidia-l4")
    assert l4.step_time_s(100) == l4.step_time_s(24)
    assert l4.step_time_s(24) < l4.decode_ms_b32 / 1000


def test_step_time_refuses_an_empty_batch():
    with pytest.raises(ValueError):
        chip_profile("nvidia-h100").step_time_s(0)


def test_prefill_time_is_tokens_over_prefill_throughput():
    h100 = chip_profile("nvidia-h100")
    assert h100.prefill_time_s(30_000) == pytest.approx(1.0)
    assert h100.prefill_time_s(0) == 0
    with pytest.raises(ValueError):
        h100.prefill_time_s(-1)


def test_decode_throughput_grows_with_batch_then_saturates_at_max_batch():
    a100 = chip_profile("nvidia-a100")
    assert a100.decode_tok_s(1) == pytest.approx(1000 / 11.5)
    assert a100.decode_tok_s(32) == pytest.approx(32 / 0.0176)
    assert a100.decode_tok_s(32) > 10 * a100.decode_tok_s(1)
    assert a100.decode_tok_s(10_000) == a100.decode_tok_s(256)


def test_cpu_avx2_profile_reproduces_the_measured_throughput_of_this_machine():
    # ENVIRONMENT.md: ~14 tok/s single, ~100 tok/s at 32 concurrent (SmolLM2-135M, vLLM CPU)
    cpu = chip_profile("cpu-avx2")
    assert cpu.decode_tok_s(1) == pytest.approx(14, rel=0.02)
    assert cpu.decode_tok_s(32) == pytest.approx(100, rel=0.02)


def test_an_inconsistent_profile_is_refused():
    good = chip_profile("nvidia-h100")
    with pytest.raises(ValueError):
        dataclasses.replace(good, decode_ms_b32=1.0)
    with pytest.raises(ValueError):
        dataclasses.replace(good, max_batch=0)
    with pytest.raises(ValueError):
        dataclasses.replace(good, prefill_tok_s=0)


def test_chip_profile_type_is_exported():
    assert isinstance(chip_profile("amd-mi300x"), ChipProfile)
