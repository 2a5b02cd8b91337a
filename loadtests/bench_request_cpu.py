"""The gateway's own CPU per request, without an HTTP server: the ASGI app driven directly.

A benchmark, not a test (issue 14: "CPU microseconds per request halved"). The app
(``create_app``) is called in-process with chat-completion requests, one at a time
(c=1) and 16 at once (c=16); its replica is the mock OpenAI upstream in another
process (``loadtests.mock_upstream``), so the upstream client is measured too, the
mock's own CPU not. CPU = this process's user + system time (every thread: the
ledger's writer included) per request. Far steadier than a wall-clock benchmark on a
shared 2-core machine, and runnable against any revision whose ``create_app`` takes
the same config (``--tree`` points at another checkout):

    python -m loadtests.bench_request_cpu [--requests 3000] [--tree /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

MODEL = "bench-model"


def config(upstream: str, ledger: str) -> dict:
    return {
        "server": {"allow_anonymous": True, "log_level": "warning"},
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.20", "output_per_mtok": "0.60"}}],
        "replicas": [{"id": "mock-0", "model": MODEL, "backend": "openai", "url": upstream + "/v1", "chip": "nvidia-h100",
                      "cost_per_hour": "2.50"}],
        "routing": {"policy": "cost_latency"},
        "ledger": ledger,
        "limits": "memory",
    }


async def drive(app, requests: int, concurrency: int) -> float:  # noqa: ANN001
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16})
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer EMPTY"),
               (b"content-length", str(len(body)).encode())]

    async def one() -> int:
        sent = False
        status = 0

        async def receive():  # noqa: ANN202
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()

        async def send(message) -> None:  # noqa: ANN001
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers,
                 "query_string": b"", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
                 "scheme": "http", "http_version": "1.1", "root_path": "", "raw_path": b"/v1/chat/completions"}
        await app(scope, receive, send)
        return status

    async def worker(n: int) -> None:
        for _ in range(n):
            status = await one()
            assert status == 200, status

    for _ in range(50):  # warm up
        await one()
    started = time.process_time()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (requests // concurrency * concurrency) * 1e6


async def run(requests: int) -> dict[str, float]:
    from gateway.app import create_app
    from gateway.config import parse_config

    port = _free_port()
    here = Path(__file__).resolve().parent.parent  # this checkout's mock, whichever gateway is measured
    proc = subprocess.Popen([sys.executable, "-m", "loadtests.mock_upstream", "--port", str(port)], cwd=here,
                            env={**os.environ, "PYTHONPATH": str(here)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        await _until_up(port)
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(parse_config(config(f"http://127.0.0.1:{port}", f"sqlite:///{tmp}/ledger.db"), env={}))
            lifespan = _Lifespan(app)
            await lifespan.start()
            try:
                return {"c1_cpu_us": await drive(app, requests // 3, 1), "c16_cpu_us": await drive(app, requests, 16)}
            finally:
                await lifespan.stop()
    finally:
        proc.kill()


class _Lifespan:
    def __init__(self, app) -> None:  # noqa: ANN001
        self.app, self.inbox, self.outbox = app, asyncio.Queue(), asyncio.Queue()

    async def start(self) -> None:
        self.task = asyncio.create_task(self.app({"type": "lifespan"}, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        assert message["type"] == "lifespan.startup.complete", message

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until_up(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)  # the mock process starting
    raise RuntimeError("mock upstream did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--tree", type=Path, help="measure another checkout (its create_app) instead of this one")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.tree is not None:
        # this file run in a process whose gateway packages come from the other checkout
        env = {**os.environ, "PYTHONPATH": str(args.tree)}
        out = subprocess.run([sys.executable, __file__, "--requests", str(args.requests), "--rounds", str(args.rounds)],
                             env=env, capture_output=True, text=True, check=True, cwd=args.tree)
        rounds = orjson.loads(out.stdout.strip().splitlines()[-1])["rounds"]
    else:
        import uvloop

        rounds = [uvloop.run(run(args.requests)) for _ in range(args.rounds)]
    best = {k: min(r[k] for r in rounds) for k in rounds[0]}
    print(orjson.dumps({"rounds": rounds, "best": best}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
