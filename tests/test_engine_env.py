"""An engine's environment: allow-listed names only, applied while it is built, one build at a time."""

from __future__ import annotations

import os
import threading
import time

import pytest
from pydantic import ValidationError

from backends.engine_env import check_engine_env, engine_environment
from backends.settings import EngineConfig

ALLOWED = {
    "CUDA_VISIBLE_DEVICES": "0,1", "HIP_VISIBLE_DEVICES": "0", "ASCEND_RT_VISIBLE_DEVICES": "3",
    "XPU_VISIBLE_DEVICES": "1", "OMP_NUM_THREADS": "8", "VLLM_CPU_OMP_THREADS_BIND": "0-7",
    "VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_ATTENTION_BACKEND": "FLASH_ATTN",
}
REFUSED = [
    "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PATH", "HOME", "MAAS_ADMIN_KEY",
    "VLLM_PLUGINS", "VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING", "VLLM_HOST_IP", "VLLM_PORT",
    "VLLM_RPC_BASE_PATH", "VLLM_ALLOW_INSECURE_SERIALIZATION", "VLLM_API_KEY", "VLLM_USE_MODELSCOPE",
    "VLLM_NCCL_SO_PATH", "VLLM_TRACE_FUNCTION", "VLLM_CACHE_ROOT", "vllm_lowercase", "VLLM_",
]


def test_device_thread_and_vllm_tuning_variables_are_allowed() -> None:
    assert check_engine_env(ALLOWED) == ALLOWED
    assert EngineConfig(env=ALLOWED).env == ALLOWED


@pytest.mark.parametrize("name", REFUSED)
def test_variables_that_load_code_or_move_files_and_sockets_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        check_engine_env({name: "x"})
    with pytest.raises(ValidationError):
        EngineConfig(env={name: "x"})


def test_values_are_bounded() -> None:
    with pytest.raises(ValueError):
        check_engine_env({"CUDA_VISIBLE_DEVICES": "0\x00"})
    with pytest.raises(ValueError):
        check_engine_env({"CUDA_VISIBLE_DEVICES": "0," * 1000})


def test_the_environment_applies_only_while_the_engine_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with engine_environment({"CUDA_VISIBLE_DEVICES": "1", "OMP_NUM_THREADS": "8"}):
        assert (os.environ["CUDA_VISIBLE_DEVICES"], os.environ["OMP_NUM_THREADS"]) == ("1", "8")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and os.environ["OMP_NUM_THREADS"] == "2"


def test_refused_names_never_reach_the_environment() -> None:
    # vLLM's CPU platform may set LD_PRELOAD itself (tcmalloc) when imported in this process
    before = os.environ.get("LD_PRELOAD")
    with pytest.raises(ValueError), engine_environment({"LD_PRELOAD": "/tmp/evil.so"}):
        pass
    assert os.environ.get("LD_PRELOAD") == before != "/tmp/evil.so"


def test_engines_built_at_once_never_see_each_others_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    mixed: list[str] = []

    def build(device: str) -> None:
        for _ in range(200):
            with engine_environment({"CUDA_VISIBLE_DEVICES": device}):
                time.sleep(0)  # let the other builder run, if it could enter
                if os.environ.get("CUDA_VISIBLE_DEVICES") != device:
                    mixed.append(device)

    threads = [threading.Thread(target=build, args=(str(i),)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mixed == []
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
