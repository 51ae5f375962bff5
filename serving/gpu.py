"""Read the GPUs through NVML (nvidia-ml-py). No GPU, no driver or no library reads as no GPUs.

NVML is initialised once per process and left initialised: `nvmlInit` costs a few milliseconds
with a driver and fails the same way every time without one, so both outcomes are cached.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuReading:
    """One GPU's memory and load at the moment it was read."""

    index: int
    name: str
    memory_used_bytes: int
    memory_total_bytes: int
    utilization_percent: int | None

    @property
    def memory_used_fraction(self) -> float:
        """Used memory as a fraction of the total (0.0 when the total is unknown)."""
        if self.memory_total_bytes <= 0:
            return 0.0
        return self.memory_used_bytes / self.memory_total_bytes


def read_gpus() -> list[GpuReading]:
    """Every GPU NVML sees, in index order; an empty list when there is none or no driver."""
    nvml = _initialised_nvml()
    if nvml is None:
        return []
    return read_gpus_from(nvml)


def read_gpus_from(nvml: Any) -> list[GpuReading]:
    """Read every device through an initialised NVML binding (the `pynvml` module in production).

    A device error (a GPU fallen off the bus, a driver reload) reads as no GPUs rather than a
    crash: callers use this to pick a profile or to report, and both have a no-GPU path.
    """
    try:
        return [_read_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    except nvml.NVMLError:
        return []


def _read_device(nvml: Any, index: int) -> GpuReading:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuReading(
        index=index,
        # Older bindings return bytes, newer ones str.
        name=name.decode() if isinstance(name, bytes) else str(name),
        memory_used_bytes=int(memory.used),
        memory_total_bytes=int(memory.total),
        utilization_percent=_utilization(nvml, handle),
    )


def _utilization(nvml: Any, handle: Any) -> int | None:
    # MIG slices and some virtual GPUs do not report utilisation; that is not a reason to fail.
    try:
        return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nvml.NVMLError:
        return None


@functools.cache
def _initialised_nvml() -> Any | None:
    """The `pynvml` module after a successful `nvmlInit`, or None (cached either way)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError):
        return None
    return pynvml
