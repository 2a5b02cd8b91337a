"""A server-sent-events response that notices a client leaving.

A watcher reads ``http.disconnect`` while frames are produced; when the client
goes, the producer is cancelled once (plain asyncio cancellation, not a
level-triggered cancel scope), so its cleanup can still await: abort the
request in the engine, hand the partial usage to billing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive, Scope, Send

_SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class SSEResponse:
    """ASGI response streaming ``frames`` (already SSE-encoded bytes)."""

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        self._frames = frames
        self._headers = [*_SSE_HEADERS] + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(self._watch(receive, producer))
        try:
            await producer
        except (asyncio.CancelledError, OSError):
            # the client disconnected; the producer's cleanup has already run
            if not producer.cancelled() and not producer.done():
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _pump(self, send: Send) -> None:
        frames = self._frames
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await frames.aclose()  # type: ignore[attr-defined]

    @staticmethod
    async def _watch(receive: Receive, producer: asyncio.Future[None]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                producer.cancel()
                return
