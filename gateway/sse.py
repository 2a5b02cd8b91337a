"""Sending server-sent events while noticing a client that leaves.

A watcher reads ``http.disconnect`` while frames are produced; when the client
goes, the producer is cancelled once (plain asyncio cancellation, not a
level-triggered cancel scope), so its cleanup can still await: abort the
request in the engine, hand the partial usage to billing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.exchange import Exchange

_SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


async def stream_frames(exchange: Exchange, frames: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]]) -> None:
    """Send ``frames`` (already SSE-encoded) as the response; stop them if the client leaves."""
    producer = asyncio.ensure_future(_pump(exchange, frames, [*_SSE_HEADERS, *headers]))
    watcher = asyncio.ensure_future(_watch(exchange, producer))
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


async def _pump(exchange: Exchange, frames: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]]) -> None:
    send = exchange.send
    try:
        await exchange.start(200, headers)
        async for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await frames.aclose()  # type: ignore[attr-defined]


async def _watch(exchange: Exchange, producer: asyncio.Future[None]) -> None:
    receive = exchange.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            producer.cancel()
            return
