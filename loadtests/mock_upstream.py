"""A very fast mock OpenAI upstream for overhead benchmarks and soak runs.

Raw asyncio protocol (uvloop when installed), HTTP/1.1 keep-alive, fixed bodies:
``POST /v1/chat/completions`` and ``/v1/completions`` answer at once, as JSON with
usage or (``"stream": true``) as one SSE burst ending in a usage chunk and
``[DONE]``; ``GET /v1/models`` lists the model; everything else is 404 (so a
gateway's vLLM ``/metrics`` scraper stops asking). It never looks at the prompt:
the point is to cost the gateway in front of it, not to be an LLM.

    python -m loadtests.mock_upstream --port 9100 [--cpu 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

import orjson

MODEL = "bench-model"
#: what every answer claims, so a gateway's metering can be checked against it
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 16
_WORDS = ["mock"] * COMPLETION_TOKENS

_USAGE = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: ".encode()
        + content_type
        + f"\r\ncontent-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n".encode()
    )
    return head + body


def _chunked(content_type: bytes, frames: list[bytes]) -> bytes:
    out = [b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\ntransfer-encoding: chunked\r\n"
           b"cache-control: no-cache\r\nconnection: keep-alive\r\n\r\n"]
    for frame in frames:
        out.append(b"%x\r\n%s\r\n" % (len(frame), frame))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def _chat_body() -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(_WORDS)},
                     "logprobs": None, "finish_reason": "length"}],
        "usage": _USAGE,
    })


def _text_body() -> bytes:
    return orjson.dumps({
        "id": "cmpl-mock", "object": "text_completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "text": " ".join(_WORDS), "logprobs": None, "finish_reason": "length"}],
        "usage": _USAGE,
    })


def _sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chat_stream() -> list[bytes]:
    head = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    frames = [_sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
    for i, word in enumerate(_WORDS):
        last = i == len(_WORDS) - 1
        frames.append(_sse({**head, "choices": [{"index": 0, "delta": {"content": word + ("" if last else " ")},
                                                  "finish_reason": "length" if last else None}]}))
    frames.append(_sse({**head, "choices": [], "usage": _USAGE}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def _text_stream() -> list[bytes]:
    head = {"id": "cmpl-mock", "object": "text_completion", "created": 1700000000, "model": MODEL}
    frames = []
    for i, word in enumerate(_WORDS):
        last = i == len(_WORDS) - 1
        frames.append(_sse({**head, "choices": [{"index": 0, "text": word + ("" if last else " "),
                                                  "finish_reason": "length" if last else None}]}))
    frames.append(_sse({**head, "choices": [], "usage": _USAGE}))
    frames.append(b"data: [DONE]\n\n")
    return frames


_JSON = b"application/json"
_SSE = b"text/event-stream"
ANSWERS: dict[tuple[bytes, bool], bytes] = {
    (b"/v1/chat/completions", False): _response("200 OK", _JSON, _chat_body()),
    (b"/v1/chat/completions", True): _chunked(_SSE, _chat_stream()),
    (b"/v1/completions", False): _response("200 OK", _JSON, _text_body()),
    (b"/v1/completions", True): _chunked(_SSE, _text_stream()),
}
_MODELS = _response("200 OK", _JSON, orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "mock"}]}))
_NOT_FOUND = _response("404 Not Found", _JSON, b'{"error":{"message":"not found","type":"not_found"}}')


def _wants_stream(body: bytes) -> bool:
    # clients serialise with or without spaces; this is cheaper than parsing the JSON
    return b'"stream":true' in body or b'"stream": true' in body


class _Connection(asyncio.Protocol):
    """One keep-alive client connection; pipelined requests are answered in order."""

    __slots__ = ("_transport", "_buffer")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            marker = head.lower().find(b"content-length:")
            if marker >= 0:
                stop = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            body = buffer[end + 4 : total]
            buffer = buffer[total:]
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method == b"POST":
                out.append(ANSWERS.get((path, _wants_stream(body)), _NOT_FOUND))
            elif path == b"/v1/models":
                out.append(_MODELS)
            else:
                out.append(_NOT_FOUND)
        self._buffer = buffer
        if out and self._transport is not None:
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])


def pin_to_cpu(cpu: int | None) -> None:
    """Pin this process to one core when the OS lets us (Linux)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(host: str, port: int, *, ready_file: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, host, port, backlog=1024, reuse_address=True)
    if ready_file:
        with open(ready_file, "w") as f:
            f.write(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--cpu", type=int, help="pin to this core")
    parser.add_argument("--ready-file", help="write the bound port here once listening")
    args = parser.parse_args(argv)
    pin_to_cpu(args.cpu)
    install_uvloop()
    asyncio.run(serve(args.host, args.port, ready_file=args.ready_file))


if __name__ == "__main__":
    main()
