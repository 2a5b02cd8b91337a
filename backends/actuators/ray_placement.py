"""Where a replica of a ``ray`` pool may run: the pool's ``ray:`` settings and its chip's Ray resources.

A chip Ray detects natively is asked for the way Ray advertises it: the device
resource (``GPU`` for NVIDIA and AMD, ``NPU`` for Ascend) and the node's
accelerator type (``accelerator_type:L4``, which Ray adds to every node it finds
such a card on). A chip Ray does not know (Kunlun, Hygon, the CPU kinds) is a
custom resource named after the chip, ``chip:<name>``, which the operator
declares when starting the node (``ray start --resources='{"chip:kunlun-p800": 8}'``).

| chip | Ray resources per replica (``accelerators: 1``) |
|---|---|
| nvidia-h100 | ``GPU: 1`` + ``accelerator_type:H100`` |
| nvidia-a100 | ``GPU: 1`` + ``accelerator_type:A100`` |
| nvidia-l4 | ``GPU: 1`` + ``accelerator_type:L4`` |
| amd-mi300x | ``GPU: 1`` + ``accelerator_type:AMD-Instinct-MI300X-OAM`` |
| ascend-910b | ``NPU: 1`` + ``accelerator_type:Ascend910B`` |
| anything else | ``chip:<name>: 1`` |

``accelerator_type`` overrides the type (an Ascend node reporting ``Ascend910B3``);
``resources`` replaces the mapping altogether.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from backends.chips import CHIPS
from backends.settings import RayPoolSettings

#: chips Ray detects itself: (device resource, accelerator type as ``ray.util.accelerators`` names it)
RAY_ACCELERATORS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "nvidia-h100": ("GPU", "H100"),
    "nvidia-a100": ("GPU", "A100"),
    "nvidia-l4": ("GPU", "L4"),
    "amd-mi300x": ("GPU", "AMD-Instinct-MI300X-OAM"),
    "ascend-910b": ("NPU", "Ascend910B"),
})
#: the share of a node's accelerator-type resource one actor asks for (what ``accelerator_type=`` adds in Ray)
_TYPE_SHARE = 0.001


@dataclass(frozen=True, slots=True)
class RayPlacement:
    """The resources one replica's actor asks Ray for."""

    num_cpus: float
    num_gpus: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)
    accelerator_type: str | None = None
    memory_bytes: int | None = None
    strategy: str = "SPREAD"

    def required(self) -> dict[str, float]:
        """Every resource named as Ray's scheduler sees it (for checks and messages)."""
        need = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources}
        if self.accelerator_type is not None:
            need[f"accelerator_type:{self.accelerator_type}"] = _TYPE_SHARE
        if self.memory_bytes is not None:
            need["memory"] = float(self.memory_bytes)
        return {name: amount for name, amount in need.items() if amount > 0}

    def actor_options(self) -> dict[str, Any]:
        """Keyword arguments of ``ActorClass.options`` for this placement."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "scheduling_strategy": self.strategy}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.accelerator_type is not None:
            options["accelerator_type"] = self.accelerator_type
        if self.memory_bytes is not None:
            options["memory"] = self.memory_bytes
        return options


def placement_for(chip: str, settings: RayPoolSettings) -> RayPlacement:
    """The Ray resources a replica on ``chip`` asks for, under the pool's ``ray:`` settings."""
    profile = CHIPS.get(chip)
    name = profile.name if profile is not None else chip
    memory = None if settings.memory_gib is None else int(settings.memory_gib * 1024**3)
    strategy = "SPREAD" if settings.strategy == "spread" else "DEFAULT"
    if settings.resources is not None:
        resources = dict(settings.resources)
        gpus = resources.pop("GPU", 0.0)
        return RayPlacement(settings.num_cpus, gpus, resources, settings.accelerator_type, memory, strategy)
    device = RAY_ACCELERATORS.get(name)
    if device is None:
        return RayPlacement(settings.num_cpus, 0.0, {f"chip:{name}": settings.accelerators}, settings.accelerator_type,
                            memory, strategy)
    resource, accelerator_type = device
    accelerator_type = settings.accelerator_type or accelerator_type
    if resource == "GPU":
        return RayPlacement(settings.num_cpus, settings.accelerators, {}, accelerator_type, memory, strategy)
    return RayPlacement(settings.num_cpus, 0.0, {resource: settings.accelerators}, accelerator_type, memory, strategy)
