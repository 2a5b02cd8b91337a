"""The replica registrar of deploy/kubernetes (replicas/registrar.py) as a real process, read event by event.

The registrar prints one logfmt event per line; a reader thread timestamps each one as it
arrives so that tests can wait for an event (not for time) and compare when things happened.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REGISTRAR = Path(__file__).parent.parent / "deploy" / "kubernetes" / "replicas" / "registrar.py"


def parse_event(line: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for part in shlex.split(line):
        key, _, value = part.partition("=")
        fields[key] = value
    return fields


class RegistrarProcess:
    """``registrar.py COMMAND`` with the given environment, its events in a queue."""

    def __init__(self, env: dict[str, str], command: str = "run") -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REGISTRAR), command],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.seen: list[dict[str, Any]] = []
        self._taken: set[int] = set()
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = parse_event(line.strip()) if line.startswith("event=") else {"event": "output", "line": line}
            event["at"] = time.monotonic()
            self._events.put(event)
        self._events.put(None)

    def expect(self, event: str, timeout: float = 30.0, **fields: str) -> dict[str, Any]:
        """The first event named ``event`` with ``fields`` not returned before; fails after ``timeout``."""
        def wanted(got: dict[str, Any]) -> bool:
            return got["event"] == event and all(got.get(k) == v for k, v in fields.items())

        for index, got in enumerate(self.seen):
            if index not in self._taken and wanted(got):
                self._taken.add(index)
                return got
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event} {fields} within {timeout}s; seen: {self.seen}") from None
            if got is None:
                self._events.put(None)  # later calls see the end too
                raise AssertionError(f"registrar exited ({self.process.wait()}) before {event} {fields}; seen: {self.seen}")
            self.seen.append(got)
            if wanted(got):
                self._taken.add(len(self.seen) - 1)
                return got

    def stop(self) -> None:
        """What Kubernetes does to the sidecar when the pod is deleted."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
