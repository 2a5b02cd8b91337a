"""Per-request routing preferences: a model suffix or the body's ``routing`` object.

``model:cheap`` / ``model:fast`` and ``extra_body={"routing": {"prefer": "cost" |
"latency", "chips": [...], "max_ttft_ms": N}}``, OpenRouter-style. Parsing is
strict: anything unexpected is an :class:`InvalidPreference` (HTTP 400).

What a preference promises: ``chips`` is a hard filter (no replica on those chips
-> the router refuses); ``prefer`` and ``max_ttft_ms`` are best effort: when no
replica is predicted to meet ``max_ttft_ms`` the request goes to the fastest
predicted one instead of failing, because a prediction is not a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Prefer = Literal["cost", "latency"]

_SUFFIXES: dict[str, Prefer] = {":cheap": "cost", ":fast": "latency"}
_KEYS = ("prefer", "chips", "max_ttft_ms")
_MAX_CHIPS = 32


@dataclass(frozen=True, slots=True)
class RoutingPreference:
    """What the caller asked of routing; all fields None means no preference."""

    prefer: Prefer | None = None
    chips: tuple[str, ...] | None = None
    max_ttft_ms: float | None = None


NO_PREFERENCE = RoutingPreference()


class InvalidPreference(Exception):
    """A malformed routing preference (HTTP 400); ``param`` names the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def chip_matches(chip: str, wanted: tuple[str, ...]) -> bool:
    """Whether ``chip`` is one of ``wanted``, by exact name or vendor family.

    ``"nvidia"`` matches ``"nvidia-h100"``; ``"nvidia-h100"`` matches only itself.
    """
    chip = chip.lower()
    return any(chip == w or chip.startswith(w + "-") for w in wanted)


def parse_preference(model_field: str, routing_body: object | None) -> tuple[str, RoutingPreference]:
    """Split a ``:cheap``/``:fast`` suffix off the model name and validate ``routing``.

    Returns the model name without the suffix and the combined preference.
    """
    model, prefer = model_field, None
    for suffix, meaning in _SUFFIXES.items():
        if model_field.endswith(suffix) and len(model_field) > len(suffix):
            model, prefer = model_field[: -len(suffix)], meaning
            break
    if routing_body is None:
        return model, RoutingPreference(prefer=prefer)
    if not isinstance(routing_body, dict):
        raise InvalidPreference("routing", "'routing' must be an object")
    unknown = sorted(str(k) for k in routing_body if k not in _KEYS)
    if unknown:
        raise InvalidPreference(
            f"routing.{unknown[0]}",
            f"unknown routing field {unknown[0]!r}; allowed: {', '.join(_KEYS)}",
        )
    body_prefer = _parse_prefer(routing_body.get("prefer"))
    if prefer is not None and body_prefer is not None and body_prefer != prefer:
        raise InvalidPreference(
            "routing.prefer",
            f"routing.prefer {body_prefer!r} contradicts the model suffix (prefer {prefer!r})",
        )
    return model, RoutingPreference(
        prefer=body_prefer or prefer,
        chips=_parse_chips(routing_body.get("chips")),
        max_ttft_ms=_parse_max_ttft(routing_body.get("max_ttft_ms")),
    )


def _parse_prefer(value: object) -> Prefer | None:
    if value is None:
        return None
    if value == "cost" or value == "latency":
        return value
    raise InvalidPreference("routing.prefer", "routing.prefer must be 'cost' or 'latency'")


def _parse_chips(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise InvalidPreference("routing.chips", "routing.chips must be a non-empty list of chip names")
    if len(value) > _MAX_CHIPS:
        raise InvalidPreference("routing.chips", f"routing.chips lists at most {_MAX_CHIPS} chips")
    chips: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise InvalidPreference("routing.chips", "routing.chips entries must be non-empty strings")
        name = item.strip().lower()
        if name not in chips:
            chips.append(name)
    return tuple(chips)


def _parse_max_ttft(value: object) -> float | None:
    if value is None:
        return None
    # bool is an int subclass: `true` is not a latency
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPreference("routing.max_ttft_ms", "routing.max_ttft_ms must be a number")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise InvalidPreference("routing.max_ttft_ms", "routing.max_ttft_ms must be a positive number")
    return number
