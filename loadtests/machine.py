"""One line naming the machine a benchmark ran on (every report prints it)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_machine(*, with_load: bool = False) -> str:
    """CPU model, cores, OS and Python; with ``with_load``, the 1-minute load average now."""
    text = f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    if with_load and hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.2f} at start"
    return text
