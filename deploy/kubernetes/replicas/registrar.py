"""Keeps one replica pod registered with every gateway pod, and drains and removes it when the pod stops.

It runs as a sidecar beside vLLM's OpenAI server in each replica pod (replicas/*.yaml) and is
the discovery half of the gateway's ``external`` actuator on Kubernetes: KEDA decides how many
pods a pool has, this decides that the gateways route to exactly the pods that are up.

- ``run`` (the sidecar): waits until the local engine lists its model, then registers the pod
  (``POST /admin/replicas``, a ``backend: openai`` replica at the pod's address) with every
  gateway pod, and again every few seconds, because each gateway process keeps its own
  registry and a gateway pod that restarts or is added starts empty (409 means "already
  there"). On SIGTERM it drains the replica on every gateway (no new requests), removes it
  (``DELETE /admin/replicas/{id}?timeout_s=N``, which waits for the requests in flight), writes
  the done file and exits.
- ``wait-deregistered`` (the engine container's preStop hook): returns once ``run`` has written
  the done file, so the engine stops only after no gateway sends it anything.

Gateways come from ``MAAS_GATEWAY_DNS`` (``host:port`` of a headless Service, resolved on every
round: one address per gateway pod) or ``MAAS_GATEWAYS`` (comma-separated base URLs). Standard
library only: it runs in whatever Python the engine's image ships. Every line it prints is one
event in logfmt (``event=registered replica=... gateway=...``).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(Exception):
    """A required variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    admin_key: str
    replica: dict[str, Any]
    gateways: tuple[str, ...] = ()
    gateway_dns: str | None = None
    engine_ready_url: str = "http://127.0.0.1:8000/v1/models"
    reconcile_s: float = 10.0
    drain_timeout_s: float = 120.0
    http_timeout_s: float = 5.0
    done_file: Path = field(default_factory=lambda: Path("/run/maas-registrar/deregistered"))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"{name} is not set")
            return value

        def number(name: str, default: float) -> float:
            try:
                value = float(env.get(name, default))
            except ValueError:
                raise SettingsError(f"{name} is not a number: {env[name]!r}") from None
            if value <= 0:
                raise SettingsError(f"{name} must be > 0")
            return value

        replica: dict[str, Any] = {
            "id": need("MAAS_REPLICA_ID"),
            "model": need("MAAS_REPLICA_MODEL"),
            "backend": "openai",
            "chip": need("MAAS_REPLICA_CHIP"),
            "url": need("MAAS_REPLICA_URL"),
        }
        if env.get("MAAS_REPLICA_UPSTREAM_MODEL"):
            replica["upstream_model"] = env["MAAS_REPLICA_UPSTREAM_MODEL"]
        if env.get("MAAS_REPLICA_COST_PER_HOUR"):
            replica["cost_per_hour"] = env["MAAS_REPLICA_COST_PER_HOUR"]  # a string: the gateway keeps it Decimal
        if env.get("MAAS_REPLICA_EXTRA"):
            # fields the gateway's replica schema may add (a pool name, ...) without a new registrar
            try:
                extra = json.loads(env["MAAS_REPLICA_EXTRA"])
            except json.JSONDecodeError as exc:
                raise SettingsError(f"MAAS_REPLICA_EXTRA is not JSON: {exc}") from None
            if not isinstance(extra, dict):
                raise SettingsError("MAAS_REPLICA_EXTRA must be a JSON object")
            replica.update(extra)
        gateways = tuple(u.strip().rstrip("/") for u in env.get("MAAS_GATEWAYS", "").split(",") if u.strip())
        dns = env.get("MAAS_GATEWAY_DNS", "").strip() or None
        if not gateways and dns is None:
            raise SettingsError("set MAAS_GATEWAY_DNS (host:port of the gateways' headless Service) or MAAS_GATEWAYS")
        if dns is not None and ":" not in dns:
            raise SettingsError(f"MAAS_GATEWAY_DNS must be host:port, got {dns!r}")
        return cls(
            admin_key=need("MAAS_ADMIN_KEY"),
            replica=replica,
            gateways=gateways,
            gateway_dns=dns,
            engine_ready_url=env.get("MAAS_ENGINE_READY_URL", cls.engine_ready_url),
            reconcile_s=number("MAAS_RECONCILE_S", cls.reconcile_s),
            drain_timeout_s=number("MAAS_DRAIN_TIMEOUT_S", cls.drain_timeout_s),
            http_timeout_s=number("MAAS_HTTP_TIMEOUT_S", cls.http_timeout_s),
            done_file=Path(env.get("MAAS_DONE_FILE", "/run/maas-registrar/deregistered")),
        )


def log(event: str, **fields: Any) -> None:
    parts = [f"event={event}"]
    for key, value in fields.items():
        text = str(value)
        parts.append(f"{key}={json.dumps(text) if (' ' in text or not text) else text}")
    print(" ".join(parts), flush=True)


@dataclass(frozen=True)
class Answer:
    status: int  # 0: the gateway could not be reached
    body: Any


def call(method: str, url: str, *, key: str | None, body: Any = None, timeout_s: float) -> Answer:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if key is not None:
        request.add_header("authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Answer(response.status, _json(response.read()))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _json(exc.read()))
    except (urllib.error.URLError, OSError) as exc:
        return Answer(0, {"error": {"message": str(getattr(exc, "reason", exc))}})


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return {"error": {"message": raw[:200].decode(errors="replace")}}


def _message(answer: Answer) -> str:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    return str(error.get("message", error)) if isinstance(error, dict) else str(error or answer.body)


def discover(settings: Settings) -> list[str]:
    """Base URLs of the gateway pods now: the static list plus every address the DNS name has."""
    urls = set(settings.gateways)
    if settings.gateway_dns is not None:
        host, _, port = settings.gateway_dns.rpartition(":")
        try:
            infos = socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            log("dns_failed", name=settings.gateway_dns, error=exc)
            infos = []
        for family, *_, address in infos:
            ip = address[0]
            urls.add(f"http://[{ip}]:{port}" if family == socket.AF_INET6 else f"http://{ip}:{port}")
    return sorted(urls)


def engine_ready(settings: Settings) -> bool:
    """The engine answers and lists the model it serves under the name the gateway will ask for."""
    answer = call("GET", settings.engine_ready_url, key=None, timeout_s=settings.http_timeout_s)
    if answer.status != 200 or not isinstance(answer.body, dict):
        return False
    served = settings.replica.get("upstream_model") or settings.replica["model"]
    return any(isinstance(m, dict) and m.get("id") == served for m in answer.body.get("data", ()))


def register(settings: Settings, gateway: str) -> bool:
    """Make sure ``gateway`` has this replica; True when it has."""
    replica_id = settings.replica["id"]
    answer = call("POST", f"{gateway}/admin/replicas", key=settings.admin_key, body=settings.replica,
                  timeout_s=settings.http_timeout_s)
    if answer.status == 201:
        log("registered", replica=replica_id, gateway=gateway)
        return True
    if answer.status == 409:
        return True  # already registered there
    event = "unreachable" if answer.status == 0 else "refused"
    log(event, replica=replica_id, gateway=gateway, status=answer.status, message=_message(answer))
    return False


def deregister(settings: Settings, gateway: str) -> None:
    """Drain, then remove (the gateway waits for the requests in flight, up to the drain timeout)."""
    replica_id = urllib.parse.quote(settings.replica["id"], safe="")
    base = f"{gateway}/admin/replicas/{replica_id}"
    drained = call("POST", f"{base}/drain", key=settings.admin_key, timeout_s=settings.http_timeout_s)
    if drained.status == 404:
        log("not_registered", replica=settings.replica["id"], gateway=gateway)
        return
    removed = call("DELETE", f"{base}?timeout_s={settings.drain_timeout_s:g}", key=settings.admin_key,
                   timeout_s=settings.drain_timeout_s + settings.http_timeout_s)
    if removed.status == 200 and isinstance(removed.body, dict):
        log("removed", replica=settings.replica["id"], gateway=gateway,
            in_flight_cut=removed.body.get("in_flight_cut", "?"))
    else:
        log("remove_failed", replica=settings.replica["id"], gateway=gateway, status=removed.status,
            message=_message(removed))


def run(settings: Settings, stopping: threading.Event) -> int:
    settings.done_file.unlink(missing_ok=True)
    log("waiting_for_engine", url=settings.engine_ready_url, replica=settings.replica["id"])
    while not engine_ready(settings):
        if stopping.wait(1.0):
            break
    known: set[str] = set()
    if not stopping.is_set():
        log("engine_ready", replica=settings.replica["id"])
        while True:
            for gateway in discover(settings):
                if register(settings, gateway):
                    known.add(gateway)
            if stopping.wait(settings.reconcile_s):
                break
    # gateways that appeared since the last round may have registered us through a restart
    # of this sidecar; ask every one we know of now
    gateways = sorted(known | set(discover(settings)))
    log("deregistering", replica=settings.replica["id"], gateways=len(gateways))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(gateways))) as pool:
        list(pool.map(lambda g: deregister(settings, g), gateways))
    settings.done_file.parent.mkdir(parents=True, exist_ok=True)
    settings.done_file.write_text(f"{time.time():.3f}\n")
    log("deregistered", replica=settings.replica["id"])
    return 0


def wait_deregistered(done_file: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while not done_file.exists():
        if time.monotonic() > deadline:
            log("wait_timed_out", file=done_file)
            return 1
        time.sleep(0.2)  # the file is written by another container: there is no event to wait on
    return 0


def main(argv: list[str], env: Mapping[str, str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    if command == "wait-deregistered":
        done = Path(env.get("MAAS_DONE_FILE", "/run/maas-registrar/deregistered"))
        return wait_deregistered(done, float(env.get("MAAS_DRAIN_TIMEOUT_S", "120")) + 30)
    if command != "run":
        print(f"usage: {argv[0]} [run | wait-deregistered]", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        log("bad_settings", error=exc)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return run(settings, stopping)


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ))
