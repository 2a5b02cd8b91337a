"""Model directories built once, crash-safe, shared by concurrent processes.

A directory is built in a temporary sibling, a marker file is written last (and
synced), and the sibling is renamed into place in one step, so a half-built model
never looks ready; a file lock lets one process build while the others wait and then
find it ready. The marker names a format version: bumping it rebuilds old caches.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

READY_MARKER = ".maas-ready.json"

#: ``progress(stage, fraction)``: a human-readable stage and overall progress in [0, 1]
ProgressCallback = Callable[[str, float], None]


class BundledModelError(Exception):
    """A bundled model cannot be prepared (package missing, conversion failed)."""


def maas_home(env: dict[str, str] | None = None) -> Path:
    """The gateway's data home: ``$MAAS_HOME``, default ``~/.cache/maas-gateway``."""
    env = os.environ if env is None else env
    home = env.get("MAAS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "maas-gateway"


def is_ready(target: Path, version_key: str, version: int) -> bool:
    """Whether ``target`` is a complete directory of this format version."""
    try:
        marker = json.loads((target / READY_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get(version_key) == version


def build_once(
    target: Path, build: Callable[[Path], None], *, marker: Mapping[str, Any], version_key: str, label: str,
    failure: str, report: ProgressCallback,
) -> Path:
    """``target``, built by ``build(staging)`` unless it is ready; ``marker`` (holding
    ``version_key``) is written last. Blocking: call it from a thread inside an event loop."""
    version = marker[version_key]
    if is_ready(target, version_key, version):
        report(f"{label} ready", 1.0)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # one builder at a time per cache directory (parallel test workers, two CLIs)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(target, version_key, version):
            report(f"{label} ready", 1.0)
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            build(staging)
            _write_marker(staging, marker)
            staging.chmod(0o755)  # mkdtemp makes it owner-only
            if target.exists():
                shutil.rmtree(target)  # a directory without the marker is a leftover, never a usable model
            os.replace(staging, target)
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, BundledModelError):
                raise
            raise BundledModelError(f"{failure} failed: {exc}") from exc
    report(f"{label} ready", 1.0)
    return target


def _write_marker(staging: Path, marker: Mapping[str, Any]) -> None:
    with open(staging / READY_MARKER, "w") as fh:
        fh.write(json.dumps(dict(marker), indent=2))
        fh.flush()
        os.fsync(fh.fileno())
