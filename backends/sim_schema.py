"""Synthetic values that validate against a JSON schema, for the simulated backend (a TEST DOUBLE).

Covers what tool parameters and response formats use: types, ``enum``, ``const``,
``$ref``/``$defs``, ``anyOf``/``oneOf``/``allOf``, numeric bounds and ``multipleOf``,
length bounds, ``minItems``/``maxItems``/``uniqueItems``, ``prefixItems``, common
string ``format``s; a ``pattern`` is met for simple cases only. Values are
deterministic nonsense from a seeded generator, like the double's prose.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from backends.base import UpstreamRejected
from backends.sim_text import WORDS

_FORMATS = MappingProxyType(
    {
        "date-time": "2026-01-01T12:00:00Z",
        "date": "2026-01-01",
        "time": "12:00:00",
        "email": "user@example.com",
        "uri": "https://example.com/item",
        "url": "https://example.com/item",
        "hostname": "example.com",
        "ipv4": "192.0.2.1",
        "ipv6": "2001:db8::1",
        "uuid": "123e4567-e89b-42d3-a456-426614174000",
    }
)
_MAX_DEPTH = 8


class SchemaSynthesizer:
    """Makes a value that validates against a JSON schema (one root schema, its ``$defs``)."""

    def __init__(self, root: Mapping[str, Any] | bool, rng: random.Random) -> None:
        self._root = root if isinstance(root, Mapping) else {}
        self._rng = rng

    def value(self, schema: Mapping[str, Any] | bool | None = None, depth: int = 0) -> Any:
        schema = self._root if schema is None else schema
        if not isinstance(schema, Mapping):
            return self._words(1, 3)  # `true` (or `{}`): anything goes
        if "$ref" in schema:
            return self.value(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self._rng.choice(list(schema["enum"]))
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part["$ref"]) if isinstance(part, Mapping) and "$ref" in part else part
                if isinstance(part, Mapping):
                    for key, item in part.items():
                        merged[key] = {**merged.get(key, {}), **item} if key == "properties" else item
            return self.value(merged, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [o for o in schema[key] if not (isinstance(o, Mapping) and o.get("type") == "null")]
                return self.value((options or schema[key])[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, f"_{kind}", self._string)(schema, depth)

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise UpstreamRejected(f"Only local $ref are supported, got {ref!r}.", param="response_format")
        node: Any = self._root
        for part in ref.lstrip("#/").split("/") if ref != "#" else ():
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            raise UpstreamRejected(f"$ref {ref!r} does not resolve in the schema.", param="response_format")
        return node

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        if depth >= _MAX_DEPTH:
            keys = list(schema.get("required") or ())
        else:
            keys = list(properties)
            keys += [k for k in schema.get("required") or () if k not in properties]
        out = {key: self.value(properties.get(key, {"type": "string"}), depth + 1) for key in keys}
        for i in range(len(out), int(schema.get("minProperties") or 0)):
            out[f"field_{i}"] = self.value(schema.get("additionalProperties") or {"type": "string"}, depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = list(schema.get("prefixItems") or ())
        low = max(int(schema.get("minItems") or 0), len(prefix) if prefix else 0)
        high = schema.get("maxItems")
        count = max(low, min(2 if depth < _MAX_DEPTH else 0, high if high is not None else 2))
        items = schema.get("items", {})
        out: list[Any] = []
        attempts = 0
        while len(out) < count and attempts < count * 8:
            attempts += 1
            item = self.value(prefix[len(out)] if len(out) < len(prefix) else items, depth + 1)
            if schema.get("uniqueItems") and item in out:
                continue
            out.append(item)
        return out

    def _string(self, schema: Mapping[str, Any], depth: int) -> str:
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt]
        low = int(schema.get("minLength") or 0)
        high = schema.get("maxLength")
        text = self._words(1, 3)
        pattern = schema.get("pattern")
        if pattern:
            text = self._matching(pattern, text)
        if len(text) < low:
            text = (text + " " + self._words(low // 4 + 1, low // 4 + 2))[: max(low, len(text))]
            text = text.ljust(low, "x")
        if high is not None:
            text = text[: int(high)]
        return text

    def _matching(self, pattern: str, first: str) -> str:
        regex = re.compile(pattern)
        candidates = [first, "a", "A", "0", "abc", "A1", "a-1", "x_1", "abc123", "ABC", "2026-01-01"]
        for candidate in candidates:
            if regex.search(candidate):
                return candidate
        # a pattern that is one character class repeated, e.g. ^[A-Z]{3}$
        simple = re.fullmatch(r"\^?\[([^\]]+)\]\{(\d+)(?:,\d*)?\}\$?", pattern)
        if simple:
            pool = [c for c in string.printable if re.fullmatch(f"[{simple.group(1)}]", c)]
            if pool:
                return "".join(self._rng.choice(pool) for _ in range(int(simple.group(2))))
        return first

    def _integer(self, schema: Mapping[str, Any], depth: int) -> int:
        low, high = _bounds(schema)
        return int(self._multiple(low, high, schema.get("multipleOf") or 1))

    def _number(self, schema: Mapping[str, Any], depth: int) -> float:
        low, high = _bounds(schema)
        if schema.get("multipleOf"):
            return float(self._multiple(low, high, schema["multipleOf"]))
        # a multiple of 1/4 is exact in binary and in JSON text
        return float(self._multiple(low, high, 0.25))

    def _multiple(self, low: float, high: float, step: float) -> float:
        first, last = math.ceil(low / step), math.floor(high / step)
        return self._rng.randint(first, max(first, last)) * step

    def _boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return self._rng.random() < 0.5

    def _null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None

    def _words(self, low: int, high: int) -> str:
        return " ".join(self._rng.choice(WORDS) for _ in range(self._rng.randint(low, high)))


def _bounds(schema: Mapping[str, Any]) -> tuple[float, float]:
    """[low, high] from minimum/maximum and their exclusive forms (a small margin inside those)."""
    low = float(schema.get("minimum", schema.get("exclusiveMinimum", 0)))
    high = float(schema.get("maximum", schema.get("exclusiveMaximum", max(low, 0) + 100)))
    if "minimum" not in schema and "exclusiveMinimum" not in schema and high < low:
        low = high - 100
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(schema["exclusiveMinimum"], bool):
        low = max(low, schema["exclusiveMinimum"] + 0.25)
    if isinstance(schema.get("exclusiveMaximum"), (int, float)) and not isinstance(schema["exclusiveMaximum"], bool):
        high = min(high, schema["exclusiveMaximum"] - 0.25)
    return low, max(low, high)
