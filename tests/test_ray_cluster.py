"""Runs the Ray tests (``tests/ray``) in a network namespace of their own, with a real local cluster.

Ray binds some of its agents to the machine's non-loopback address even when told
to use loopback, and tests may use loopback only: inside a fresh network
namespace loopback is the only interface there is. The cluster and the gateways
under test run in there (SQLite and in-memory limits: PostgreSQL and Redis are
outside); afterwards no process of that run may be left on the machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.ray_cluster import TEMP_DIR_ENV, in_own_network_namespace, processes_naming

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _namespace_command(inner: str) -> list[str]:
    # root creates the namespace directly; anyone else maps themselves to root in a user namespace first
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    return [*unshare, "sh", "-c", f"ip link set lo up && exec {inner}"]


@pytest.mark.skipif(in_own_network_namespace(), reason="already in a namespace of its own: tests/ray runs directly")
def test_ray_tests_pass_in_their_own_network_namespace_and_leave_no_process() -> None:
    assert shutil.which("unshare") and shutil.which("ip"), "the Ray tests need unshare (util-linux) and ip (iproute2)"
    temp_dir = tempfile.mkdtemp(prefix="mr-", dir="/tmp")
    inner = shlex.join([sys.executable, "-m", "pytest", "tests/ray", "-q", "-s", "-p", "no:cacheprovider"])
    began = time.monotonic()
    try:
        run = subprocess.run(
            # TMPDIR too: what the run writes (a killed replica's files included) goes where it is removed
            _namespace_command(inner), cwd=ROOT, env={**os.environ, TEMP_DIR_ENV: temp_dir, "TMPDIR": temp_dir},
            capture_output=True, text=True, timeout=1500, check=False,
        )
        took = time.monotonic() - began
        output = run.stdout + run.stderr
        for line in output.splitlines():
            if line.startswith(("measured:", "ray cluster")):
                print(line)
        print(f"the Ray tests took {took:.0f}s")
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
        assert run.returncode == 0, output[-6000:]
        assert re.search(r"\d+ passed", summary) and "skipped" not in summary, summary
    finally:
        left = processes_naming(f"{TEMP_DIR_ENV}={temp_dir}", environment=True)
        for entry in left:  # ours: end them, then fail
            os.kill(int(entry.split(":")[0]), signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not left, "processes of the Ray tests left running:\n" + "\n".join(left)
