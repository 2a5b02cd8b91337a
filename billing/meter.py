"""Metering what was delivered: engine usage when there is one, a count otherwise.

A stream cut short (client gone, replica failed) never carries the engine's
usage; the meter bills the tokens actually delivered. Counts come from the
backend's per-delta token numbers when it gives them (exact) and from a
tokenizer otherwise (an estimate, flagged as such).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backends.base import Completion, GenerationRequest, StreamChunk, Usage
from billing.tokens import THREAD_THRESHOLD_CHARS, estimate_chars

if TYPE_CHECKING:
    from billing.tokens import TokenCounter


class StreamMeter:
    """Follows a stream as it is delivered to the client."""

    def __init__(self, counter: TokenCounter | None = None) -> None:
        self._counter = counter
        self.delivered_tokens = 0
        #: whether any delivered count came from a tokenizer (or character estimate)
        self.counted = False
        self.engine_usage: Usage | None = None
        self.chunks = 0

    def on_chunk(self, chunk: StreamChunk) -> None:
        """Count a chunk's tokens once it has been handed to the client."""
        self.chunks += 1
        for delta in chunk.deltas:
            if delta.tokens is not None:
                self.delivered_tokens += delta.tokens
            else:
                text = delta.text + "".join(_tool_call_text(call) for call in delta.tool_calls or ())
                if text:
                    self.counted = True
                    self.delivered_tokens += self._count(text)
        if chunk.usage is not None:
            self.engine_usage = chunk.usage

    def _count(self, text: str) -> int:
        # deltas are small; a huge one (never seen from an engine) gets the cheap estimate
        if self._counter is None or len(text) > THREAD_THRESHOLD_CHARS:
            return estimate_chars(text)
        return self._counter.count_text(text)

    def final_usage(self, *, prompt_tokens_estimate: int) -> tuple[Usage, bool]:
        """(usage, complete): the engine's usage if the stream ended with it, else what was delivered.

        Without engine usage the prompt count is the gateway's estimate, so the
        usage is flagged ``estimated`` whenever a tokenizer supplied any count.
        """
        if self.engine_usage is not None:
            return self.engine_usage, True
        usage = Usage(
            prompt_tokens=max(prompt_tokens_estimate, 0),
            completion_tokens=self.delivered_tokens,
            cached_tokens=0,
            estimated=True,
        )
        return usage, False


def _tool_call_text(call: object) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return ""
    return str(function.get("name") or "") + str(function.get("arguments") or "")


async def usage_or_estimate(
    counter: TokenCounter | None, request: GenerationRequest, completion: Completion
) -> Usage:
    """A non-streaming completion's usage: the backend's if reported, else counted (estimated)."""
    if completion.usage is not None:
        return completion.usage
    if request.kind == "chat":
        if counter is None:
            prompt = estimate_chars(sum(len(str(m.get("content") or "")) for m in request.messages or ()))
        else:
            prompt = await counter.acount_messages(request.messages or [])
    elif isinstance(request.prompt, list):
        prompt = len(request.prompt)  # already token ids
    elif counter is None:
        prompt = estimate_chars(request.prompt or "")
    else:
        prompt = await counter.acount_text(request.prompt or "")
    completion_tokens = 0
    for choice in completion.choices:
        text = choice.text or ""
        completion_tokens += estimate_chars(text) if counter is None else await counter.acount_text(text)
    return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens, estimated=True)
