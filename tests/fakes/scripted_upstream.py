"""An OpenAI-compatible upstream that answers every request with one scripted HTTP response.

A real HTTP/1.1 server on 127.0.0.1 (asyncio streams, its own thread and loop), so the
gateway's upstream client, error mapping and headers are exercised for real. It keeps
the Authorization headers it was sent, to check what the gateway gives away.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import orjson


@dataclass
class Script:
    """What to answer: status, extra headers, body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"


_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Unavailable"}


class ScriptedUpstream:
    """``POST`` -> the current script; ``GET /v1/models`` -> a one-model list (health checks pass)."""

    def __init__(self, model: str = "llama-3.1-8b-instruct") -> None:
        self.model = model
        self.script = Script()
        self.authorizations: list[str | None] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="scripted-upstream", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                pairs = (line.partition(":") for line in lines[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.authorizations.append(headers.get("authorization"))
                if method == "GET":
                    models = {"object": "list", "data": [{"id": self.model, "object": "model"}]}
                    script = Script(body=orjson.dumps(models))
                else:
                    script = self.script
                extra = "".join(f"{k}: {v}\r\n" for k, v in script.headers.items())
                head = (
                    f"HTTP/1.1 {script.status} {_REASONS.get(script.status, 'Status')}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(script.body)}\r\n{extra}\r\n"
                )
                writer.write(head.encode("latin-1") + script.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
