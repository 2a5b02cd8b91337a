"""uvicorn's httptools protocol with the limits a public edge needs.

httptools (llhttp) accepts headers of any size and waits forever for the rest of
a request: an 8 MB ``x-request-id`` was accepted, and a client sending headers or
a body a byte at a time held its connection (and its memory) for as long as it
liked. This protocol bounds both, per connection, before the app sees anything:

* the request line and headers may hold at most ``max_header_bytes`` (431);
* they must arrive within ``header_timeout_s`` of the request's first byte, and
  the body within ``body_timeout_s`` of the headers (408, connection closed).

The number of connections is bounded by uvicorn's own ``limit_concurrency`` (503).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Takes its limits from the uvicorn config's ``http_limits`` (see ``gateway.server``)."""

    _header_bytes = 0
    _too_large = False
    _timer: asyncio.TimerHandle | None = None

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits: HttpLimits = getattr(config, "http_limits", None) or HttpLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # a connection that never sends a request must not be held open either
        self._arm(self._limits.header_timeout_s, "no request arrived")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._too_large and not self.transport.is_closing():
            self._refuse(b"431 Request Header Fields Too Large", "request headers are too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._too_large = False
        self._arm(self._limits.header_timeout_s, "request headers arrived too slowly")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        if not self._too_large:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if not self._too_large:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._too_large:
            return  # refused in data_received; the app never sees this request
        self._arm(self._limits.body_timeout_s, "request body arrived too slowly")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._too_large:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._too_large:
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            self._too_large = True

    def _arm(self, seconds: float, why: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._refuse, b"408 Request Timeout", why)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: bytes, why: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        self.logger.warning("refused a request from %s: %s", self.client, why)
        if self.cycle is None or not self.cycle.response_started:
            body = why.encode()
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
            )
        self.transport.close()
