"""The environment an in-process vLLM engine may be given (``engine.env``), and how it is applied.

An engine's ``env`` picks its devices and tunes vLLM; it must never be a way to run
code in the gateway (``LD_PRELOAD``, ``PYTHONPATH``, a logging config that imports
classes, a plugin list) or to point vLLM's sockets and files elsewhere. So names are
allow-listed: device visibility, thread counts, and ``VLLM_*`` tuning variables whose
names carry none of the fragments that mean paths, addresses, code or secrets.

vLLM spawns the engine's processes from the thread that builds it, inheriting the
process environment, so the variables have to be in ``os.environ`` while it builds.
``engine_environment`` sets them for that time only and holds one process-wide lock
meanwhile, so that two engines built at once never start with each other's devices.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping

#: device visibility, per accelerator family (NVIDIA, AMD, Ascend, Kunlun, Intel, Habana, Cambricon, Enflame, ...)
DEVICE_VARIABLES = frozenset({
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES", "ASCEND_VISIBLE_DEVICES", "XPU_VISIBLE_DEVICES", "ZE_AFFINITY_MASK",
    "HABANA_VISIBLE_MODULES", "MLU_VISIBLE_DEVICES", "TOPS_VISIBLE_DEVICES", "NEURON_RT_VISIBLE_CORES",
    "TPU_VISIBLE_CHIPS",
})
THREAD_VARIABLES = frozenset({"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"})

_VLLM_NAME = re.compile(r"^VLLM_[A-Z0-9_]+$")
#: a VLLM_* name containing any of these names a path, an address, code to load, a secret or a download
_VLLM_DANGEROUS = (
    "PATH", "DIR", "ROOT", "FOLDER", "FILE", "HOST", "_IP", "PORT", "URL", "SERVER", "RPC", "PLUGIN", "CACHE",
    "LOGGING", "SERIAL", "TRACE", "DUMP", "KEY", "TOKEN", "SECRET", "MODELSCOPE", "LORA", "MEDIA", "FETCH",
    "DOWNLOAD", "REDIRECT", "SO_", "INCLUDE", "ENV", "DEV_MODE", "USAGE", "PROFIL", "MASTER", "SIDE_CHANNEL",
    "ALLOW", "REMOTE", "CONFIG", "NAME",
)
#: harmless despite a fragment above
_VLLM_SAFE = frozenset({"VLLM_CPU_KVCACHE_SPACE"})
_MAX_VALUE_CHARS = 1024

# os.environ is one per process: the lock guarding it is necessarily as global as it is
_ENVIRON_LOCK = threading.Lock()


def allowed_name(name: str) -> bool:
    """Whether ``engine.env`` may set the variable ``name``."""
    if name in DEVICE_VARIABLES or name in THREAD_VARIABLES or name in _VLLM_SAFE:
        return True
    return bool(_VLLM_NAME.match(name)) and not any(part in name[5:] for part in _VLLM_DANGEROUS)


def check_engine_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` unchanged when every name is allowed and every value sane; else ValueError naming the first."""
    for name, value in env.items():
        if not allowed_name(name):
            raise ValueError(
                f"{name} cannot be set for an engine: engine.env takes device visibility "
                f"(e.g. CUDA_VISIBLE_DEVICES, ASCEND_RT_VISIBLE_DEVICES), thread counts (OMP_NUM_THREADS) "
                "and VLLM_* tuning variables only"
            )
        if "\x00" in value or len(value) > _MAX_VALUE_CHARS:
            raise ValueError(f"{name}: the value must be under {_MAX_VALUE_CHARS} characters, without NUL")
    return dict(env)


@contextlib.contextmanager
def engine_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Apply an (allowed) ``env`` while an engine is built, then restore; one engine build at a time."""
    env = check_engine_env(env)
    with _ENVIRON_LOCK:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
