"""Load for the Ray tests: non-streaming chat requests from threads, every outcome recorded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None  # None: no HTTP answer at all
    replica: str | None
    at: float
    error: str = ""


@dataclass
class Load:
    """Requests to ``url`` until stopped: paced at ``rate`` per second, or back to back from ``workers`` threads."""

    url: str
    rate: float | None = None
    workers: int = 4
    max_tokens: int = 16
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32)))

    def start(self) -> Load:
        self._pool = ThreadPoolExecutor(max_workers=self.workers + 1 if self.rate is None else 16)
        if self.rate is None:
            for _ in range(self.workers):
                self._pool.submit(self._back_to_back)
        else:
            self._pool.submit(self._paced)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        assert self._pool is not None
        self._pool.shutdown(wait=True)
        self._client.close()
        return self.outcomes

    def served_by(self, replica: str) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.replica == replica and o.status == 200)

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.status != 200]

    def _back_to_back(self) -> None:
        while not self._stop.is_set():
            self._one()

    def _paced(self) -> None:
        assert self._pool is not None
        gap = 1.0 / (self.rate or 1.0)
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            next_at += gap
            # the load's arrival process (evenly spaced), not a wait standing in for an event
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        body = {"model": "default", "messages": [{"role": "user", "content": "Tell me about chips."}],
                "max_tokens": self.max_tokens}
        try:
            answer = self._client.post(self.url + "/v1/chat/completions", json=body)
            outcome = Outcome(answer.status_code, answer.headers.get("x-maas-replica"), time.time(),
                              "" if answer.status_code == 200 else answer.text[:300])
        except httpx.HTTPError as exc:
            outcome = Outcome(None, None, time.time(), f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.outcomes.append(outcome)
