"""The chip catalog: published performance profiles of one model replica per chip.

Every profile except ``cpu-avx2`` describes a ~8B dense model (Llama-3-8B class,
BF16/FP16) served by vLLM on ONE chip. The numbers come from
``shared/data/chips.md`` §4, where each is tagged [M] measured, [V] vendor
datasheet, [D] derived from the roofline formulas there, or [A] assumed; the
comment above each profile names its sources [Rn] from that file's §6.
The ``simulated`` backend runs these profiles; the router and the reports use
them for labels and default costs.

``cold_start_s`` is the time from starting a replica to its first served request:
process start and imports, weights loaded from a local disk or page cache (no
download, no image pull), engine init (memory profiling, KV cache, graph capture
with warm compile caches). Sources, cited as [Cn] next to each profile:
[C1] vllm-project/vllm PR #11005: ``vllm serve meta-llama/Meta-Llama-3-8B``, engine
init 14.18 s (10 s of it graph capture) [M]; [C2] Tensorfuse, "Reducing GPU cold
start time when using vLLM" (2025-09-01), Llama-3.1-8B-Instruct on L40S with warm
caches: weights 18 s + dynamo 10 s + compile 13 s + graph capture 7 s + engine
init and imports 34 s = 82 s (294 s with a model download) [M]; [C3]
vllm-project/vllm issue #20264: with a persisted torch.compile cache, engine init
34 s and the first answer after 59 s [M]; [C4] vllm-project/vllm-ascend issue #3045:
engine init 52.96 s on Ascend [M]; [C5] "Breaking the Ice: Analyzing Cold Start
Latency in vLLM" (arXiv 2606.07362): start-up is mostly CPU-bound; [C6]
shared/ENVIRONMENT.md: this project's CPU engine starts in ~40 s, its API server
is ready in ~50 s [M].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

#: the batch of the second reference point of every profile (chips.md §4)
_REFERENCE_BATCH = 32


@dataclass(frozen=True, slots=True)
class ChipProfile:
    """How fast one replica of a ~8B model runs on a chip, and what the chip costs.

    ``decode_ms_b1`` / ``decode_ms_b32`` are the times of one decode step (one token
    for every running sequence) at batch 1 and 32; steps in between are linear.
    """

    name: str
    vendor: str
    description: str
    prefill_tok_s: float
    decode_ms_b1: float
    decode_ms_b32: float
    max_batch: int
    cost_per_hour: Decimal
    confidence: str
    sources: str
    #: seconds from start to first served request (see the module docstring)
    cold_start_s: float

    def __post_init__(self) -> None:
        if self.prefill_tok_s <= 0 or self.decode_ms_b1 <= 0 or self.decode_ms_b32 < self.decode_ms_b1:
            raise ValueError(f"chip {self.name!r}: need prefill > 0 and 0 < decode_ms_b1 <= decode_ms_b32")
        if self.max_batch < 1:
            raise ValueError(f"chip {self.name!r}: max_batch must be >= 1")
        if self.cold_start_s < 0:
            raise ValueError(f"chip {self.name!r}: cold_start_s must be >= 0")

    def step_time_s(self, batch: int) -> float:
        """Seconds of one decode step for ``batch`` running sequences (clamped to max_batch).

        Linear between the B=1 and B=32 points and extrapolated past 32 (chips.md §4).
        """
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        batch = min(batch, self.max_batch)
        slope_ms = (self.decode_ms_b32 - self.decode_ms_b1) / (_REFERENCE_BATCH - 1)
        return (self.decode_ms_b1 + (batch - 1) * slope_ms) / 1000.0

    def prefill_time_s(self, tokens: int) -> float:
        """Seconds to prefill ``tokens`` prompt tokens."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        return tokens / self.prefill_tok_s

    def scaled(self, time_scale: float) -> ChipProfile:
        """The same chip running ``time_scale`` times as long (a simulated replica's clock)."""
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if time_scale == 1.0:
            return self
        return dataclasses.replace(
            self,
            prefill_tok_s=self.prefill_tok_s / time_scale,
            decode_ms_b1=self.decode_ms_b1 * time_scale,
            decode_ms_b32=self.decode_ms_b32 * time_scale,
        )

    def decode_tok_s(self, batch: int) -> float:
        """Generated tokens per second over all sequences at this batch size."""
        batch = min(max(batch, 1), self.max_batch)
        return batch / self.step_time_s(batch)


_PROFILES = (
    # [M] decode B<=10 7.2-7.56 ms, TTFT 62 ms, vLLM 0.6.0 Llama-3-8B BF16 [R3];
    # [V] 3.35 TB/s, 989 TFLOPS [R1][R2]; [D] B=32 step 9.7 ms, prefill 30.8k tok/s;
    # price $3.99/GPU-h RunPod Secure / Lambda [R5][R6][R7].
    # cold start [D] 60 s: engine init 14 s [C1] + weights 18 s and imports/server [C2]; matches [C3]'s 59 s.
    ChipProfile(
        name="nvidia-h100",
        vendor="nvidia",
        description="NVIDIA H100 SXM 80GB, vLLM (CUDA)",
        prefill_tok_s=30_000,
        decode_ms_b1=7.0,
        decode_ms_b32=9.7,
        max_batch=256,
        cost_per_hour=Decimal("3.99"),
        confidence="measured B<=10 + derived",
        sources="chips.md R1-R3, R5; cold start C1-C3",
        cold_start_s=60.0,
    ),
    # [M] decode 11.5 ms/token B<=10, prefill ~10.8k tok/s [R3]; [V] 2.039 TB/s,
    # 312 TFLOPS [R2][R8]; [D] B=32 step 17.6 ms; price $1.79/GPU-h RunPod Secure [R5].
    # cold start [D] 65 s: the H100 steps [C1][C2], graph capture and weight copy a little slower [A].
    ChipProfile(
        name="nvidia-a100",
        vendor="nvidia",
        description="NVIDIA A100 SXM 80GB, vLLM (CUDA)",
        prefill_tok_s=10_000,
        decode_ms_b1=11.5,
        decode_ms_b32=17.6,
        max_batch=256,
        cost_per_hour=Decimal("1.79"),
        confidence="measured B<=10 + derived",
        sources="chips.md R2, R3, R5, R8; cold start C1, C2",
        cold_start_s=65.0,
    ),
    # [V] 300 GB/s, 121 TFLOPS [R12][R13][R1]; [D] step 76 ms B=1, 95 ms B=32 (only for
    # contexts <= 800 tokens), prefill 3.8k tok/s; KV room ~27k tokens -> batch 24 [D];
    # price $0.81/h AWS g6.xlarge [R12].
    # cold start [D] 85 s: 82 s measured on an L40S (same Ada generation) [C2]; an L4 host has fewer
    # cores and start-up is CPU-bound [C5].
    ChipProfile(
        name="nvidia-l4",
        vendor="nvidia",
        description="NVIDIA L4 24GB, vLLM (CUDA)",
        prefill_tok_s=3_800,
        decode_ms_b1=76.0,
        decode_ms_b32=95.0,
        max_batch=24,
        cost_per_hour=Decimal("0.81"),
        confidence="derived",
        sources="chips.md R12-R14; cold start C2, C5",
        cold_start_s=85.0,
    ),
    # [V] 192 GB HBM3 [R15], 5.3 TB/s [R16]; 1,307 TFLOPS [V, unverified]; [D] with
    # eta_f 0.4: step 4.5 / 6.5 ms, prefill ~30k tok/s; price $3.99/h Cirrascale [R7].
    # cold start [A] 90 s: no public 8B figure found; the CUDA steps [C2] with slower ROCm graph
    # capture and Triton JIT assumed.
    ChipProfile(
        name="amd-mi300x",
        vendor="amd",
        description="AMD Instinct MI300X 192GB, vLLM (ROCm)",
        prefill_tok_s=30_000,
        decode_ms_b1=4.5,
        decode_ms_b32=6.5,
        max_batch=512,
        cost_per_hour=Decimal("3.99"),
        confidence="derived (specs partly unverified)",
        sources="chips.md R7, R15, R16; cold start C2 (assumed)",
        cold_start_s=90.0,
    ),
    # [V] 64 GB/NPU [R17]; [M] vllm-ascend v0.7.3 ITL 22.9 ms at QPS 1 [R20], GPUStack
    # TPOT 27.6 ms under load and prefill >= 9.1k tok/s [R21]; [D] calibrated 21 / 29 ms;
    # price [A] $1.50/NPU-h placeholder (no public price found).
    # cold start [D] 90 s: engine init 53 s on Ascend [C4] + weights and imports as [C2].
    ChipProfile(
        name="ascend-910b",
        vendor="huawei",
        description="Huawei Ascend 910B 64GB (Atlas 800 A2), vllm-ascend",
        prefill_tok_s=9_000,
        decode_ms_b1=21.0,
        decode_ms_b32=29.0,
        max_batch=128,
        cost_per_hour=Decimal("1.50"),
        confidence="measured-calibrated + derived; price assumed",
        sources="chips.md R17, R20, R21; cold start C2, C4",
        cold_start_s=90.0,
    ),
    # [V] 96 GB/card [R22]; [M] vLLM-Kunlun Qwen3-8B FP16 TPOT 16 ms at conc. 1, 18 ms at
    # 10, TTFT 80 ms for 1024 tokens [R24][R25]; [D] 23 ms at B=32;
    # price [A] $1.50/card-h placeholder (no public price found).
    # cold start [A] 90 s: no public figure found; taken as the other non-CUDA stacks.
    ChipProfile(
        name="kunlun-p800",
        vendor="kunlunxin",
        description="Kunlunxin P800 96GB, vLLM-Kunlun",
        prefill_tok_s=12_800,
        decode_ms_b1=16.0,
        decode_ms_b32=23.0,
        max_batch=256,
        cost_per_hour=Decimal("1.50"),
        confidence="measured B=1,10 + derived; price assumed",
        sources="chips.md R22, R24, R25; cold start assumed",
        cold_start_s=90.0,
    ),
    # [V] 64 GB/card [R26]; bandwidth and TFLOPS not found: [A] ~0.9 TB/s, ~190 TFLOPS
    # -> [D] 30 / 45 ms, prefill 4.7k tok/s; price [A] $1.00/card-h placeholder.
    # Lowest-confidence row: replace as soon as measured.
    # cold start [A] 120 s: no public figure found; least mature stack, slowest assumed.
    ChipProfile(
        name="hygon-k100ai",
        vendor="hygon",
        description="Hygon DCU K100_AI 64GB, vLLM DTK port",
        prefill_tok_s=4_700,
        decode_ms_b1=30.0,
        decode_ms_b32=45.0,
        max_batch=128,
        cost_per_hour=Decimal("1.00"),
        confidence="assumption-based",
        sources="chips.md R26; cold start assumed",
        cold_start_s=120.0,
    ),
    # Xeon 6 6900P-class socket, vLLM CPU backend [R27][R28][R29] (no [M] tables
    # retrieved); [D] from ~614 GB/s DDR5 and [A] ~15 TFLOPS AMX: 48 / 95 ms, prefill
    # ~1k tok/s; batch 32 keeps TPOT under Intel's 100 ms SLA [R27];
    # price [A] $3/h scaled from $0.033/vCPU-h [R30].
    # cold start [D] 60 s: ~40 s engine start measured here for a 135M model [C6], plus 16 GB of
    # weights and an 8B warm-up.
    ChipProfile(
        name="cpu-xeon-amx",
        vendor="intel",
        description="Intel Xeon 6 (AMX) one socket, vLLM CPU backend",
        prefill_tok_s=1_000,
        decode_ms_b1=48.0,
        decode_ms_b32=95.0,
        max_batch=32,
        cost_per_hour=Decimal("3.00"),
        confidence="derived; price assumed",
        sources="chips.md R27-R30; cold start C6",
        cold_start_s=60.0,
    ),
    # NOT an 8B profile: this project's own 2-core AVX2 machine running the bundled
    # SmolLM2-135M-Instruct (fp32) on the real vLLM CPU engine. [M] ENVIRONMENT.md:
    # ~14 tok/s single (=> ~71 ms/step), ~100 tok/s at 32 concurrent (=> ~320 ms/step);
    # prefill [A] 300 tok/s guess; max_batch = the engine's default max_num_seqs (64);
    # price [A] $0.08/h. Used for labels and default cost, never simulated for routing.
    # cold start [M] ~50 s to a ready API server, ~40 s for the engine [C6].
    ChipProfile(
        name="cpu-avx2",
        vendor="intel",
        description="2-core x86-64 AVX2 CPU running SmolLM2-135M with vLLM (this project's machine)",
        prefill_tok_s=300,
        decode_ms_b1=71.0,
        decode_ms_b32=320.0,
        max_batch=64,
        cost_per_hour=Decimal("0.08"),
        confidence="measured decode (SmolLM2-135M); prefill and price assumed",
        sources="shared/ENVIRONMENT.md (vLLM on CPU, measured); cold start C6",
        cold_start_s=50.0,
    ),
)

#: alias names accepted by :func:`chip_profile` (alias -> profile name)
_ALIASES = MappingProxyType({"cpu": "cpu-xeon-amx"})

#: every known chip by name, aliases included (read-only)
CHIPS: Mapping[str, ChipProfile] = MappingProxyType(
    {p.name: p for p in _PROFILES}
    | {alias: next(p for p in _PROFILES if p.name == target) for alias, target in _ALIASES.items()}
)


def chip_profile(name: str) -> ChipProfile:
    """The profile of a chip by name or alias; ``KeyError`` lists the known names."""
    try:
        return CHIPS[name]
    except KeyError:
        known = ", ".join(sorted(CHIPS))
        raise KeyError(f"unknown chip {name!r}; known chips: {known}") from None
