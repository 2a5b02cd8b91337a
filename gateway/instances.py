"""Gateways running on this machine, so that the CLI uses the same config and ledger as ``maas serve``.

``maas serve`` leaves a small record in ``$MAAS_RUN_DIR`` (default ``$MAAS_HOME/run``):
its pid, URL, config file and ledger, the ledger's SQLite path made absolute, since
``sqlite:///maas-data/maas.db`` is relative to the directory the gateway started in.
The record goes when the gateway exits; one left by a crash is recognised (that pid
is gone, or is another process now) and removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import psutil

from backends.model_cache import maas_home

RUN_DIR_ENV = "MAAS_RUN_DIR"


@dataclass(frozen=True, slots=True)
class Instance:
    """One running ``maas serve``."""

    pid: int
    started_at: float  # the process's own create time: tells a reused pid apart
    url: str
    config_path: str | None  # absolute; None for the embedded default
    ledger: str  # absolute for SQLite

    def describe(self) -> str:
        return f"{self.url} (pid {self.pid}, config {self.config_path or 'embedded default'})"


def run_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    given = env.get(RUN_DIR_ENV)
    return Path(given).expanduser() if given else maas_home(dict(env)) / "run"


def absolute_ledger(url: str, cwd: Path | None = None) -> str:
    """A ``sqlite:///relative`` ledger URL made absolute against ``cwd``; other URLs unchanged."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return url
    return "sqlite:///" + str((cwd or Path.cwd()) / url.removeprefix("sqlite:///"))


def local_url(host: str, port: int) -> str:
    """Where this machine reaches a gateway bound to ``host:port``."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _alive(pid: int, started_at: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started_at) < 1.0
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


@contextlib.contextmanager
def announce(url: str, config_path: str | None, ledger: str, directory: Path | None = None) -> Iterator[Instance]:
    """Record this process as a running gateway for as long as the block runs."""
    pid = os.getpid()
    instance = Instance(
        pid=pid,
        started_at=psutil.Process(pid).create_time(),
        url=url,
        config_path=None if config_path is None else str(Path(config_path).resolve()),
        ledger=absolute_ledger(ledger),
    )
    directory = run_dir() if directory is None else directory
    path: Path | None = directory / f"gateway-{pid}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(asdict(instance)))  # type: ignore[union-attr]
    except OSError:
        path = None  # a read-only home must not stop the gateway; the CLI then needs --config
    # uvicorn ends a graceful shutdown by raising the signal again under the handler it found:
    # make that handler an exit that still runs the clean-up below
    with _exit_on(signal.SIGTERM), _exit_on(signal.SIGINT):
        try:
            yield instance
        finally:
            if path is not None:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _exit_on(signum: int) -> Iterator[None]:
    def leave(received: int, _frame: object) -> None:
        raise SystemExit(128 + received)

    try:
        previous = signal.signal(signum, leave)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signum, previous)


def running(directory: Path | None = None) -> list[Instance]:
    """The gateways running now, oldest first (records of dead ones are removed)."""
    directory = run_dir() if directory is None else directory
    found = []
    for path in sorted(directory.glob("gateway-*.json")) if directory.is_dir() else ():
        try:
            instance = Instance(**orjson.loads(path.read_bytes()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(instance.pid, instance.started_at):
            found.append(instance)
        else:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda i: i.started_at)
