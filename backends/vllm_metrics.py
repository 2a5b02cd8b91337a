"""Read a vLLM server's Prometheus ``/metrics`` into routing telemetry."""

from __future__ import annotations

from backends.base import EngineStats

_RUNNING = "vllm:num_requests_running"
_WAITING = "vllm:num_requests_waiting"
# renamed in vLLM V1; older servers still expose the GPU-specific name
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def parse_vllm_metrics(text: str) -> EngineStats | None:
    """Sum the gauges over label sets; None when the text has no vLLM gauges."""
    running = waiting = 0.0
    kv: float | None = None
    found = False
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        head, _, value_text = line.rpartition(" ")
        name = head.split("{", 1)[0].strip()
        try:
            value = float(value_text)
        except ValueError:
            continue
        if name == _RUNNING:
            running += value
            found = True
        elif name == _WAITING:
            waiting += value
            found = True
        elif name in _KV_USAGE:
            kv = value if kv is None else max(kv, value)
            found = True
    if not found:
        return None
    return EngineStats(running=int(running), waiting=int(waiting), kv_cache_usage=kv)
