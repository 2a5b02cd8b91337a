"""Locust load test for the OpenAI surface of maas-gateway.

User classes (pick with locust's class arguments; all run by default):

* ``ChatUser``: non-streaming chat completions.
* ``StreamingChatUser``: streamed chat; besides the whole stream (``chat stream``) it
  reports time to first token as its own entry (request type ``TTFT``, name
  ``chat stream``) and fails a stream that does not end with ``[DONE]``.
* ``CompletionUser``: legacy text completions.
* ``MixedUser``: 60% chat / 30% streamed chat / 10% completions with prompt and
  output lengths drawn from the Azure LLM inference trace 2023 (conversation
  service; Patel et al., "Splitwise", ISCA 2024; Azure/AzurePublicDataset, CC-BY-4.0,
  processed copy from microsoft/vidur) at ``MAAS_TRACE`` when the file is there,
  else from 20 quantiles of that same trace built in below; calls spread over
  several API keys.

Environment:

* ``MAAS_KEYS``: comma-separated API keys (default: ``EMPTY``, the placeholder accepted as anonymous on
  a gateway with ``allow_anonymous``); each user takes the next one.
* ``MAAS_MODEL`` (``default``), ``MAAS_MAX_TOKENS`` (64: output of the fixed-size
  users), ``MAAS_MAX_PROMPT_TOKENS`` / ``MAAS_MAX_OUTPUT_TOKENS`` (2048 / 512: caps on
  trace lengths), ``MAAS_TRACE`` (path of a trace CSV), ``MAAS_WAIT_S`` (0: pause
  between a user's calls), ``MAAS_SEED`` (0).

Headless run that writes locust's CSV and HTML reports (against
``maas serve --config examples/simulated.yaml``):

    locust -f loadtests/locustfile.py --headless -u 20 -r 10 -t 20s --host http://127.0.0.1:8000 \
        --csv out/locust --html out/locust.html
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

from locust import between, constant, events, task
from locust.contrib.fasthttp import FastHttpUser

MODEL = os.environ.get("MAAS_MODEL", "default")
MAX_TOKENS = int(os.environ.get("MAAS_MAX_TOKENS", "64"))
MAX_PROMPT = int(os.environ.get("MAAS_MAX_PROMPT_TOKENS", "2048"))
MAX_OUTPUT = int(os.environ.get("MAAS_MAX_OUTPUT_TOKENS", "512"))
WAIT_S = float(os.environ.get("MAAS_WAIT_S", "0"))
TRACE = Path(os.environ.get("MAAS_TRACE", "/work/shared/data/traces/azure_conv_2023.csv"))
KEYS = [k.strip() for k in os.environ.get("MAAS_KEYS", "EMPTY").split(",") if k.strip()]

#: 20 quantiles (2.5%, 7.5%, ... 97.5%) of prompt and output tokens in azure_conv_2023.csv,
#: for when the trace file is not at hand; pairs are drawn independently from each list
FALLBACK_PROMPT_TOKENS = (120, 200, 235, 379, 393, 400, 407, 428, 922, 1005,
                          1034, 1058, 1083, 1112, 1153, 1277, 1434, 2310, 4075, 4092)
FALLBACK_OUTPUT_TOKENS = (28, 48, 60, 72, 82, 88, 93, 99, 108, 120,
                          139, 162, 195, 373, 391, 396, 406, 416, 430, 522)

_WORDS = ("chip", "replica", "token", "route", "batch", "cache", "cost", "tenant", "ledger", "stream")


def load_lengths(path: Path) -> list[tuple[int, int]]:
    """(prompt tokens, output tokens) pairs from a trace CSV, or the built-in quantiles."""
    try:
        with path.open(newline="") as f:
            rows = [(int(r["num_prefill_tokens"]), int(r["num_decode_tokens"])) for r in csv.DictReader(f)]
        if rows:
            return rows
    except (OSError, KeyError, ValueError):
        pass
    return list(itertools.product(FALLBACK_PROMPT_TOKENS, FALLBACK_OUTPUT_TOKENS))


def prompt_text(tokens: int, rng: random.Random) -> str:
    """About ``tokens`` tokens of filler (one common English word is ~one token)."""
    return " ".join(rng.choice(_WORDS) for _ in range(max(1, tokens)))


_lengths = load_lengths(TRACE)


@events.init.add_listener
def _hand_out_keys(environment, **_kw) -> None:  # noqa: ANN001
    """Users take the keys round-robin; the cycle belongs to the run's environment."""
    environment.maas_keys = itertools.cycle(KEYS)


class _GatewayUser(FastHttpUser):
    """Shared plumbing: one API key per user, JSON POSTs, SSE reading."""

    abstract = True
    wait_time = constant(WAIT_S) if WAIT_S <= 0 else between(WAIT_S / 2, WAIT_S * 1.5)

    def on_start(self) -> None:
        self.key = next(self.environment.maas_keys)
        self.headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
        self.rng = random.Random(int(os.environ.get("MAAS_SEED", "0")) + id(self) % 10_000)

    def chat(self, prompt: str, max_tokens: int) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        with self.client.post("/v1/chat/completions", data=json.dumps(body), headers=self.headers, name="chat",
                               catch_response=True) as response:
            self._check_json(response, "chat.completion")

    def completion(self, prompt: str, max_tokens: int) -> None:
        body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens}
        with self.client.post("/v1/completions", data=json.dumps(body), headers=self.headers, name="completion",
                               catch_response=True) as response:
            self._check_json(response, "text_completion")

    @staticmethod
    def _check_json(response, kind: str) -> None:  # noqa: ANN001 - locust's response context
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        data = response.json()
        if data.get("object") != kind or not data.get("usage", {}).get("completion_tokens"):
            response.failure(f"unexpected body: {response.text[:200]}")

    def stream_chat(self, prompt: str, max_tokens: int) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                "stream": True, "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        ttft: float | None = None
        with self.client.post("/v1/chat/completions", data=json.dumps(body), headers=self.headers, name="chat stream",
                              stream=True, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            done = usage = False
            try:
                for line in _sse_lines(response):
                    if line == b"[DONE]":
                        done = True
                        break
                    event = json.loads(line)
                    if "error" in event:
                        response.failure(f"stream error: {event['error'].get('message')}")
                        return
                    if ttft is None and any((c.get("delta") or {}).get("content") for c in event.get("choices", ())):
                        ttft = time.perf_counter() - started
                    usage = usage or bool(event.get("usage"))
            except Exception as exc:  # noqa: BLE001 - any break in the stream is a failed request
                response.failure(f"stream broken: {exc!r}")
                return
            if not (done and usage):
                response.failure("stream ended without usage and [DONE]")
                return
            # locust timed only the headers of a streamed response: report the whole stream
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
        if ttft is not None:
            events.request.fire(request_type="TTFT", name="chat stream", response_time=ttft * 1000,
                                response_length=0, exception=None, context={})


def _sse_lines(response) -> Iterator[bytes]:  # noqa: ANN001 - locust's FastResponse
    """``data:`` payloads as they arrive (geventhttpclient's readline returns each line at once)."""
    raw = response._response  # iter_content(1024) would wait for 1 KiB, hiding the first token
    while True:
        line = raw.readline(b"\n")
        if not line:
            return
        line = line.strip()
        if line.startswith(b"data:"):
            yield line[5:].strip()


class ChatUser(_GatewayUser):
    """Non-streaming chat, fixed size."""

    @task
    def chat_task(self) -> None:
        self.chat("Name three accelerator chips and one thing each is good at.", MAX_TOKENS)


class StreamingChatUser(_GatewayUser):
    """Streamed chat, fixed size; TTFT reported as its own entry."""

    @task
    def stream_task(self) -> None:
        self.stream_chat("Explain continuous batching in two sentences.", MAX_TOKENS)


class CompletionUser(_GatewayUser):
    """Legacy text completions, fixed size."""

    @task
    def completion_task(self) -> None:
        self.completion("The cheapest chip that meets the latency target is", MAX_TOKENS)


class MixedUser(_GatewayUser):
    """Trace-shaped lengths, three call kinds, several keys."""

    def _lengths(self) -> tuple[str, int]:
        prompt, output = self.rng.choice(_lengths)
        return prompt_text(min(prompt, MAX_PROMPT), self.rng), max(1, min(output, MAX_OUTPUT))

    @task(6)
    def mixed_chat(self) -> None:
        self.chat(*self._lengths())

    @task(3)
    def mixed_stream(self) -> None:
        self.stream_chat(*self._lengths())

    @task(1)
    def mixed_completion(self) -> None:
        self.completion(*self._lengths())
