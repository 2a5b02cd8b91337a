"""The models the gateway serves, by name and alias."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config import ModelConfig


class ModelCatalog:
    """Resolves a requested model name (or alias) to its configured model."""

    def __init__(self, models: Iterable[ModelConfig]) -> None:
        self._models = list(models)
        self._by_name: dict[str, ModelConfig] = {}
        for model in self._models:
            self._by_name[model.name] = model
            for alias in model.aliases:
                self._by_name[alias] = model

    def resolve(self, name: str) -> ModelConfig | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Every name a client may call: canonical names and aliases."""
        return list(self._by_name)

    def models(self) -> list[ModelConfig]:
        return list(self._models)
