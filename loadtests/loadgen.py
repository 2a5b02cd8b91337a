"""A closed-loop HTTP load generator much faster than the gateways it measures.

N keep-alive connections, each sending its next request when the previous answer
is complete (or, with ``--rate``, when its pacing slot comes); a connection the
server drops, or a request past ``--timeout``, is counted as an error and replaced. Raw asyncio
protocols with httptools' C parser on uvloop: one core drives well over 10,000
small requests per second. Prints one JSON object: counts, req/s, latency and
(for streams) time-to-first-byte percentiles over the measured window only.

    python -m loadtests.loadgen --url http://127.0.0.1:8000/v1/chat/completions \
        --connections 16 --duration 5 --warmup 1 [--stream] [--cpu 0] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools
import orjson

from loadtests.mock_upstream import MODEL, install_uvloop, pin_to_cpu


def request_bytes(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 POST, serialised once and resent for every request."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"host: {parts.netloc}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: keep-alive",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chat_body(*, stream: bool, model: str = MODEL, max_tokens: int = 16, content: str = "Say hello.") -> bytes:
    body: dict = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


@dataclass
class Tally:
    """What the connections observed; only requests started inside the window count."""

    measuring: bool = False
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    disconnects: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Connection(asyncio.Protocol):
    def __init__(
        self, payload: bytes, tally: Tally, pace_s: float, running: list[bool], done: asyncio.Future, timeout_s: float
    ) -> None:
        self._payload = payload
        self._tally = tally
        self._pace = pace_s
        self._running = running
        self._done = done
        self._timeout = timeout_s
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._sent_at = 0.0
        self._first = 0.0
        self._counted = False
        self._waiting = False
        self._timer: asyncio.TimerHandle | None = None
        self._next_due = 0.0
        self._loop = asyncio.get_running_loop()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._next_due = time.perf_counter()
        self._send()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._tally.errors += 1
            assert self._transport is not None
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._running[0] and self._counted:
            self._tally.disconnects += 1
            if self._waiting:
                self._tally.errors += 1
        if not self._done.done():
            self._done.set_result(None)

    def _timed_out(self) -> None:
        if self._waiting:
            if self._counted:
                self._tally.timeouts += 1
                self._tally.errors += 1
            self._waiting = False
            assert self._transport is not None
            self._transport.abort()

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if not self._first:
            self._first = time.perf_counter()

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        self._waiting = False
        if self._timer is not None:
            self._timer.cancel()
        status = self._parser.get_status_code()
        if self._counted:
            t = self._tally
            t.statuses[status] = t.statuses.get(status, 0) + 1
            if status == 200:
                t.latencies.append(now - self._sent_at)
                t.first_bytes.append((self._first or now) - self._sent_at)
            else:
                t.errors += 1
        if not self._running[0]:
            assert self._transport is not None
            self._transport.close()
            return
        if self._pace:
            self._next_due += self._pace
            delay = self._next_due - now
            if delay > 0:
                self._loop.call_later(delay, self._send)
                return
            self._next_due = now  # fell behind: do not burst to catch up
        self._send()

    def _send(self) -> None:
        if not self._running[0] or self._transport is None or self._transport.is_closing():
            if self._transport is not None:
                self._transport.close()
            return
        self._first = 0.0
        self._counted = self._tally.measuring
        self._waiting = True
        if self._timeout:
            self._timer = self._loop.call_later(self._timeout, self._timed_out)
        self._sent_at = time.perf_counter()
        self._transport.write(self._payload)


def percentiles(values: list[float], points: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds (plus the mean)."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {f"p{p:g}": ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))] * 1000
           for p in points}
    out["mean"] = sum(ordered) / len(ordered) * 1000
    return out


async def run(
    url: str, payload: bytes, *, connections: int, duration: float, warmup: float, rate: float | None,
    timeout: float = 60.0,
) -> dict:
    """Drive ``connections`` closed loops for warmup + duration seconds; return the summary.

    A connection the server closes (or that times out) is counted and replaced.
    """
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    tally = Tally()
    running = [True]
    pace = connections / rate if rate else 0.0

    async def slot() -> None:
        while running[0]:
            done = loop.create_future()
            try:
                await loop.create_connection(
                    lambda: _Connection(payload, tally, pace, running, done, timeout), parts.hostname, parts.port or 80
                )
            except OSError:
                tally.errors += tally.measuring
                await asyncio.sleep(0.1)
                continue
            await done
            if running[0]:
                await asyncio.sleep(0.01)

    slots = [loop.create_task(slot()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    tally.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    tally.measuring = False
    elapsed = time.perf_counter() - started
    running[0] = False
    await asyncio.wait(slots, timeout=10)
    for task in slots:
        task.cancel()
    ok = len(tally.latencies)
    return {
        "url": url,
        "connections": connections,
        "duration_s": round(elapsed, 3),
        "requests": ok,
        "errors": tally.errors,
        "timeouts": tally.timeouts,
        "disconnects": tally.disconnects,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "rps": round(ok / elapsed, 1),
        "latency_ms": percentiles(tally.latencies),
        "first_byte_ms": percentiles(tally.first_bytes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="full URL, e.g. http://127.0.0.1:8000/v1/chat/completions")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rate", type=float, help="total requests/s to pace at (default: as fast as answered)")
    parser.add_argument("--header", action="append", default=[], help="extra header 'name: value'")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request counts as failed")
    parser.add_argument("--cpu", type=int, help="pin to this core")
    args = parser.parse_args(argv)
    pin_to_cpu(args.cpu)
    install_uvloop()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    # anonymous gateways accept the SDKs' placeholder key; any other unknown key is a 401
    headers.setdefault("authorization", "Bearer EMPTY")
    payload = request_bytes(args.url, chat_body(stream=args.stream, model=args.model, max_tokens=args.max_tokens), headers)
    result = asyncio.run(
        run(args.url, payload, connections=args.connections, duration=args.duration, warmup=args.warmup, rate=args.rate,
            timeout=args.timeout)
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
