"""The price book: what a tenant pays for a model's tokens, in exact Decimal USD."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from backends.base import Usage
from billing.errors import UnknownModel

_PER_MTOK = Decimal(1_000_000)


class PriceLike(Protocol):
    """Anything shaped like billing.settings.Price."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None


class PricedModel(Protocol):
    """A configured model as the price book reads it (the gateway's ModelConfig)."""

    name: str
    aliases: list[str]
    price: PriceLike


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """USD per 1M tokens, with the cached-input price resolved (defaults to input)."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal

    @classmethod
    def of(cls, price: PriceLike) -> UnitPrices:
        cached = price.cached_input_per_mtok
        return cls(
            input_per_mtok=Decimal(price.input_per_mtok),
            output_per_mtok=Decimal(price.output_per_mtok),
            cached_input_per_mtok=Decimal(price.input_per_mtok if cached is None else cached),
        )


class PriceBook:
    """Prices per model (by name or alias), with optional per-tenant overrides.

    ``charge`` is exact (not rounded): the Biller rounds once, to nano-USD, at settle.
    """

    def __init__(
        self,
        models: Iterable[PricedModel],
        tenant_overrides: Mapping[str, Mapping[str, PriceLike]] | None = None,
    ) -> None:
        self._canonical: dict[str, str] = {}
        self._prices: dict[str, UnitPrices] = {}
        for model in models:
            self._prices[model.name] = UnitPrices.of(model.price)
            for name in (model.name, *model.aliases):
                self._canonical[name] = model.name
        self._overrides: dict[tuple[str, str], UnitPrices] = {}
        for tenant, prices in (tenant_overrides or {}).items():
            for name, price in prices.items():
                self._overrides[(tenant, self.canonical(name))] = UnitPrices.of(price)

    def canonical(self, model: str) -> str:
        """The model's configured name, for a name or an alias."""
        try:
            return self._canonical[model]
        except KeyError:
            raise UnknownModel(f"no price for model {model!r}") from None

    def models(self) -> list[str]:
        """Configured model names."""
        return list(self._prices)

    def unit_prices(self, model: str, tenant: str | None = None) -> UnitPrices:
        """The prices this tenant pays for this model."""
        name = self.canonical(model)
        if tenant is not None and (tenant, name) in self._overrides:
            return self._overrides[(tenant, name)]
        return self._prices[name]

    def charge(self, model: str, tenant: str | None, usage: Usage) -> Decimal:
        """Exact USD for a usage: uncached input, cached input at the cached price, output."""
        p = self.unit_prices(model, tenant)
        cached = min(max(usage.cached_tokens, 0), max(usage.prompt_tokens, 0))
        uncached = max(usage.prompt_tokens, 0) - cached
        total = (
            uncached * p.input_per_mtok
            + cached * p.cached_input_per_mtok
            + max(usage.completion_tokens, 0) * p.output_per_mtok
        )
        return total / _PER_MTOK

    def worst_case(
        self, model: str, tenant: str | None, prompt_tokens: int, max_tokens: int, n: int = 1
    ) -> Decimal:
        """The most a request can cost: no cache hits, every choice runs to max_tokens."""
        p = self.unit_prices(model, tenant)
        input_price = max(p.input_per_mtok, p.cached_input_per_mtok)
        total = max(prompt_tokens, 0) * input_price + max(max_tokens, 0) * max(n, 1) * p.output_per_mtok
        return total / _PER_MTOK
