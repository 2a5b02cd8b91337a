"""Published facts about the models the simulated chips pretend to serve: their context windows.

A simulated replica (a TEST DOUBLE) has no weights to read a context length from, so
it enforces the one its served model's card publishes. Each number cites its source
(the model's ``config.json`` ``max_position_embeddings`` on its Hugging Face page, or
the vendor's model card). A model not listed here has no known window: the double
then enforces none unless the config's ``max_model_len`` gives one.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A model's context window (prompt + output tokens) and where the number comes from."""

    context_length: int
    source: str


def _hf(repo: str, note: str = "") -> str:
    return f"https://huggingface.co/{repo} (config.json max_position_embeddings{note})"


MODEL_CARDS = MappingProxyType(
    {
        "llama-3.1-8b-instruct": ModelCard(131072, _hf("meta-llama/Llama-3.1-8B-Instruct", "; card: 128k")),
        "llama-3.1-70b-instruct": ModelCard(131072, _hf("meta-llama/Llama-3.1-70B-Instruct", "; card: 128k")),
        "llama-3.3-70b-instruct": ModelCard(131072, _hf("meta-llama/Llama-3.3-70B-Instruct")),
        "qwen2.5-7b-instruct": ModelCard(32768, _hf("Qwen/Qwen2.5-7B-Instruct", "; 128k only with YaRN")),
        "mistral-7b-instruct-v0.3": ModelCard(32768, _hf("mistralai/Mistral-7B-Instruct-v0.3")),
        "smollm2-135m-instruct": ModelCard(8192, _hf("HuggingFaceTB/SmolLM2-135M-Instruct")),
    }
)


def card_context_length(model: str) -> int | None:
    """The published context window of ``model`` (matched case-insensitively), if known."""
    card = MODEL_CARDS.get(model.lower())
    return card.context_length if card else None
