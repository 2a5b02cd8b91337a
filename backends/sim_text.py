"""Token-level model of the simulated backend: tokenizer, chat template, generator,
logprobs, prefix cache. All deterministic.

Nothing here is a real model. The tokenizer splits text into word pieces (at most
six word characters, or one punctuation mark, with the whitespace before it); the
generator draws pieces of that same shape from a fixed vocabulary, so counting a
generated text with :func:`count_tokens` gives back the number of tokens generated.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>")
_TOKEN = re.compile(
    # whitespace before a special token is its own token, so markers always count as one
    "|".join(re.escape(t) for t in _SPECIAL_TOKENS) + r"|\s*(?:\w{1,6}|(?!<\|im_(?:start|end)\|>)[^\w\s])|\s+"
)

#: the generator's vocabulary: words of at most six letters, so each is one token
WORDS = (
    "the", "a", "model", "token", "chip", "router", "node", "batch", "cache", "vector",
    "of", "to", "and", "in", "is", "runs", "serves", "fast", "cheap", "memory",
    "queue", "step", "prompt", "answer", "engine", "kernel", "tensor", "layer", "weight", "graph",
    "we", "it", "each", "every", "more", "less", "than", "with", "on", "for",
    "time", "cost", "price", "tenant", "proxy", "stream", "signal", "value", "good", "simple",
)
_PUNCTUATION = (",", ".")


def tokenize(text: str) -> list[str]:
    """Split text into the double's tokens; ``"".join(tokenize(t)) == t``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """Number of the double's tokens in ``text``."""
    return sum(1 for _ in _TOKEN.finditer(text))


def render_chat(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Render chat messages with a ChatML-like template, ending with the assistant's turn.

    Tools (as a system turn) and earlier tool calls are rendered as JSON, so they
    count as prompt tokens the way a real template makes them count.
    """
    parts = []
    if tools:
        parts.append(f"<|im_start|>system\n{json.dumps(list(tools), sort_keys=True)}<|im_end|>\n")
    for message in messages:
        role = str(message.get("role", "user"))
        text = _content_text(message.get("content"))
        if message.get("tool_calls"):
            text += json.dumps(message["tool_calls"], sort_keys=True)
        parts.append(f"<|im_start|>{role}\n{text}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # OpenAI content parts; non-text parts count as a placeholder word
        return "".join(
            str(part.get("text", "")) if part.get("type") == "text" else f"[{part.get('type')}]"
            for part in content
            if isinstance(part, Mapping)
        )
    return str(content)


def seeded_rng(*parts: object) -> random.Random:
    """A random generator seeded from the given parts (stable across processes)."""
    digest = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def natural_length(rng: random.Random, *, low: int = 16, high: int = 200) -> int:
    """How many tokens the double would generate if nothing stopped it."""
    return rng.randint(low, high)


def draft_tokens(rng: random.Random, count: int) -> list[str]:
    """``count`` generated tokens: words, with a comma or full stop now and then."""
    tokens: list[str] = []
    for i in range(count):
        if i > 0 and tokens[-1] not in _PUNCTUATION and rng.random() < 0.12:
            tokens.append(rng.choice(_PUNCTUATION))
        else:
            word = rng.choice(WORDS)
            tokens.append(word if i == 0 else " " + word)
    return tokens


@dataclass(frozen=True, slots=True)
class Drafted:
    """What one choice will emit: one text delta per generated token, and why it ends.

    ``tool_deltas``, when set, has one entry per token: the OpenAI tool-call deltas
    that token carries (the token then has no text).
    """

    tokens: tuple[str, ...]
    deltas: tuple[str, ...]
    finish_reason: str
    tool_deltas: tuple[tuple[dict[str, Any], ...], ...] | None = None
    #: the stop string that ended the text, when one did
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def draft_choice(rng: random.Random, *, max_tokens: int, stop: Sequence[str] | str) -> Drafted:
    """Draft one choice: natural length, capped at ``max_tokens``, cut at the first stop string.

    The text is a prefix of what the same ``rng`` gives with no cap and no stop, so the
    same seed gives the same words whatever the limits. A stop string is not included;
    the token that completed it still counts as generated.
    """
    natural = natural_length(rng)
    return cap_and_stop(draft_tokens(rng, min(natural, max_tokens)), natural=natural, max_tokens=max_tokens, stop=stop)


def cap_and_stop(tokens: Sequence[str], *, natural: int, max_tokens: int, stop: Sequence[str] | str) -> Drafted:
    """``tokens`` (what the double would say, ``natural`` of them) cut at ``max_tokens`` and the first stop."""
    tokens = list(tokens[:max_tokens])
    finish = "length" if max_tokens < natural else "stop"
    offsets = [0]
    for token in tokens:
        offsets.append(offsets[-1] + len(token))
    full = "".join(tokens)
    stops = [stop] if isinstance(stop, str) else [s for s in stop if s]
    if stops:
        cut = _first_stop(full, offsets, stops)
        if cut is not None:
            end_token, cut_at, matched = cut
            tokens = tokens[: end_token + 1]
            deltas = tuple(
                full[min(offsets[i], cut_at) : min(offsets[i + 1], cut_at)] for i in range(len(tokens))
            )
            return Drafted(tuple(tokens), deltas, "stop", stop_sequence=matched)
    return Drafted(tuple(tokens), tuple(tokens), finish)


def _first_stop(full: str, offsets: list[int], stops: list[str]) -> tuple[int, int, str] | None:
    """(index of the token that completes the earliest stop string, where the text is cut, the string)."""
    best: tuple[int, int, str] | None = None
    for s in stops:
        pos = full.find(s)
        if pos < 0:
            continue
        end = pos + len(s)
        # the token whose text reaches the end of the stop string completes it
        token = next(i for i in range(len(offsets) - 1) if offsets[i + 1] >= end)
        if best is None or (token, pos) < best[:2]:
            best = (token, pos, s)
    return best


def fake_logprobs(rng: random.Random, token: str, top: int) -> tuple[float, list[tuple[str, float]]]:
    """A made-up logprob for ``token`` and ``top`` alternatives, the token first."""
    chosen = -round(rng.uniform(0.001, 2.0), 4)
    alternatives = [(token, chosen)]
    last = chosen
    for word in rng.sample(WORDS, k=min(max(top - 1, 0), len(WORDS))):
        last = round(last - rng.uniform(0.05, 1.5), 4)
        alternatives.append((" " + word, last))
    return chosen, alternatives[: max(top, 0)]


def chat_logprobs(token: str, chosen: float, top: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """One token's logprobs in the chat API's shape (``{"content": [entry]}``)."""
    return {
        "content": [
            {
                "token": token,
                "logprob": chosen,
                "bytes": list(token.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
            }
        ]
    }


def completion_logprobs(
    token: str, chosen: float, top: Sequence[tuple[str, float]], text_offset: int
) -> dict[str, Any]:
    """One token's logprobs in the legacy completions API's shape."""
    return {
        "tokens": [token],
        "token_logprobs": [chosen],
        "top_logprobs": [dict(top)] if top else None,
        "text_offset": [text_offset],
    }


def merge_logprobs(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Join the per-token logprobs of one choice into one object of the same shape."""
    if "content" in parts[0]:
        return {"content": [entry for p in parts for entry in p["content"]]}
    merged: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for p in parts:
        merged["tokens"] += p["tokens"]
        merged["token_logprobs"] += p["token_logprobs"]
        merged["text_offset"] += p["text_offset"]
        merged["top_logprobs"] += p["top_logprobs"] or [None]
    if all(t is None for t in merged["top_logprobs"]):
        merged["top_logprobs"] = None
    return merged


class PrefixCache:
    """Automatic prefix caching like vLLM's: full blocks of prompt tokens, LRU-evicted."""

    BLOCK = 16

    def __init__(self, capacity_blocks: int) -> None:
        self._capacity = max(capacity_blocks, 1)
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def lookup(self, tokens: list[str] | list[int]) -> int:
        """Tokens of this prompt already cached (leading full blocks); remembers its blocks."""
        # the last prompt token is always computed, as in vLLM, to produce the first logits
        max_hits = (len(tokens) - 1) // self.BLOCK
        key = 0
        hits = 0
        matching = True
        for start in range(0, len(tokens) - self.BLOCK + 1, self.BLOCK):
            key = hash((key, tuple(tokens[start : start + self.BLOCK])))
            matching = matching and key in self._blocks
            if matching and hits < max_hits:
                hits += 1
            self._blocks[key] = None
            self._blocks.move_to_end(key)
        while len(self._blocks) > self._capacity:
            self._blocks.popitem(last=False)
        return hits * self.BLOCK
