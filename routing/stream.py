"""A routed stream: the first chunk is already in hand (failover is over), the rest
is passed through and the attempt is recorded when the stream ends, however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from backends.base import BackendError, StreamChunk
from routing.attempt import Attempt
from routing.replica import Replica


class RoutedStream:
    """Async iterator of :class:`StreamChunk` from the chosen replica.

    ``ttft_s`` is the caller's time to first chunk (failed attempts included);
    ``latency_s`` and ``replica_seconds`` are set when the stream has ended.
    Never retried: once the first chunk exists, an error reaches the caller.
    """

    def __init__(
        self,
        attempt: Attempt,
        attempts: int,
        iterator: AsyncIterator[StreamChunk],
        first: StreamChunk | None,
        *,
        started: float,
        clock: Callable[[], float],
    ) -> None:
        self.replica: Replica = attempt.replica
        self.attempts = attempts
        self._attempt = attempt
        self._iterator = iterator
        self._pending = first
        self._exhausted = first is None
        self._clock = clock
        self._started = started
        self.ttft_s: float | None = None if first is None else clock() - started
        self.latency_s: float | None = None
        self.replica_seconds: float | None = None
        #: generated tokens as the engine reported them at the end (None: not reported)
        self._usage_tokens: int | None = None
        if first is not None:
            self._note(first)
        else:
            self._end_ok()

    def __aiter__(self) -> RoutedStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._pending is not None:
            chunk, self._pending = self._pending, None
            return chunk
        if self._exhausted:
            raise StopAsyncIteration
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._end_ok()
            raise
        except BackendError as exc:
            error = exc  # bound for the callback: `exc` is unbound when the except block ends
            self._end(lambda: self._attempt.failed(error, output_tokens=self._tokens()))
            raise
        except asyncio.CancelledError:
            await self._close_upstream()
            self._end(self._attempt.abandoned)
            raise
        except Exception:
            self._end(self._attempt.crashed)
            raise
        self._note(chunk)
        return chunk

    async def aclose(self) -> None:
        """Stop early (client gone): aborts the upstream work, records the attempt."""
        if self._exhausted:
            return
        self._pending = None
        await self._close_upstream()
        self._end(self._attempt.abandoned)

    def _note(self, chunk: StreamChunk) -> None:
        # telemetry learns output lengths from the engine's count only; billing has the one
        # counter of delivered tokens (billing.tokens.StreamMeter)
        if chunk.usage is not None:
            self._usage_tokens = chunk.usage.completion_tokens

    def _tokens(self) -> int | None:
        return self._usage_tokens

    def _end_ok(self) -> None:
        self._end(lambda: self._attempt.succeeded(self._tokens()))

    def _end(self, record: Callable[[], None]) -> None:
        if self._attempt.ended:
            self._exhausted = True
            return
        self._exhausted = True
        record()
        self.latency_s = self._clock() - self._started
        self.replica_seconds = self._attempt.replica_seconds

    async def _close_upstream(self) -> None:
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: BLE001 - closing a broken upstream must not mask the caller's exit
                pass
