"""The price book: exact Decimal arithmetic, cached pricing, aliases, tenant overrides."""

from decimal import Decimal

import pytest

from backends.base import Usage
from billing.errors import UnknownModel
from billing.money import from_nano, to_nano, to_nano_ceiling
from billing.prices import PriceBook
from gateway.config import Price
from tests.test_billing_support import models


def test_charge_is_exact_decimal_of_input_and_output_prices():
    book = PriceBook(models())
    charge = book.charge("big", "acme", Usage(prompt_tokens=1234, completion_tokens=567))
    # 1234 * 3 / 1e6 + 567 * 15 / 1e6
    assert charge == Decimal("0.003702") + Decimal("0.008505")
    assert isinstance(charge, Decimal)


def test_cached_tokens_are_priced_at_the_cached_price():
    book = PriceBook(models())
    charge = book.charge("small", None, Usage(prompt_tokens=1000, cached_tokens=600, completion_tokens=10))
    expected = (400 * Decimal("0.05") + 600 * Decimal("0.01") + 10 * Decimal("0.10")) / 1_000_000
    assert charge == expected


def test_cached_price_defaults_to_input_price():
    book = PriceBook(models())
    with_cache = book.charge("big", None, Usage(prompt_tokens=1000, cached_tokens=1000))
    without = book.charge("big", None, Usage(prompt_tokens=1000))
    assert with_cache == without == Decimal("0.003")


def test_cached_tokens_never_exceed_prompt_tokens():
    book = PriceBook(models())
    # a backend reporting more cached than prompt tokens must not produce a negative charge
    charge = book.charge("small", None, Usage(prompt_tokens=10, cached_tokens=50))
    assert charge == 10 * Decimal("0.01") / 1_000_000


def test_tenant_override_replaces_the_price_for_that_tenant_only():
    book = PriceBook(models(), {"acme": {"default": Price(input_per_mtok=Decimal(1), output_per_mtok=Decimal(2))}})
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert book.charge("small", "acme", usage) == Decimal(3)
    assert book.charge("small", "other", usage) == Decimal("0.15")
    assert book.unit_prices("default", "acme").cached_input_per_mtok == Decimal(1)


def test_aliases_resolve_to_the_model_price():
    book = PriceBook(models())
    assert book.canonical("default") == "small"
    assert book.unit_prices("default") == book.unit_prices("small")


def test_unknown_model_is_an_error_not_free():
    with pytest.raises(UnknownModel):
        PriceBook(models()).charge("nope", None, Usage(prompt_tokens=1))


def test_worst_case_assumes_no_cache_and_every_choice_at_max_tokens():
    book = PriceBook(models())
    worst = book.worst_case("big", None, prompt_tokens=100, max_tokens=50, n=3)
    assert worst == (100 * Decimal(3) + 150 * Decimal(15)) / 1_000_000
    assert worst >= book.charge("big", None, Usage(prompt_tokens=100, completion_tokens=150))


def test_many_tiny_charges_sum_exactly_in_nano_usd():
    book = PriceBook(models())
    one = to_nano(book.charge("small", None, Usage(prompt_tokens=7, completion_tokens=3)))
    # 7*0.05 + 3*0.10 = 0.65 USD/M tokens -> 0.00000065 USD = 650 nano
    assert one == 650
    assert from_nano(one * 1_000_000) == Decimal("0.65")


def test_rounding_is_half_even_once_and_reservations_round_up():
    assert to_nano(Decimal("0.0000000005")) == 0
    assert to_nano(Decimal("0.0000000015")) == 2
    assert to_nano(Decimal("0.0000000025")) == 2
    assert to_nano_ceiling(Decimal("0.0000000001")) == 1
