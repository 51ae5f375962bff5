"""The GPU reader: no GPU or no NVML reads as an empty list; devices read into GpuReadings."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from serving import gpu
from serving.gpu import GpuReading, read_gpus, read_gpus_from

HAS_NVIDIA_DRIVER = Path("/proc/driver/nvidia").exists()
GIB = 1024**3


@pytest.fixture(autouse=True)
def fresh_nvml_cache() -> Iterator[None]:
    """Each test sees NVML initialised anew (the reader caches the outcome per process)."""
    gpu._initialised_nvml.cache_clear()
    yield
    gpu._initialised_nvml.cache_clear()


class StandInNvml:
    """The slice of the pynvml API the reader uses, over a fixed list of devices."""

    NVMLError = pynvml.NVMLError

    def __init__(self, devices: list[dict[str, object]]) -> None:
        self.devices = devices

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, object]:
        return self.devices[index]

    def nvmlDeviceGetName(self, handle: dict[str, object]) -> object:
        return handle["name"]

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, object]) -> SimpleNamespace:
        if handle.get("lost"):
            raise pynvml.NVMLError_GpuIsLost()
        return SimpleNamespace(used=handle["used"], total=handle["total"], free=0)

    def nvmlDeviceGetUtilizationRates(self, handle: dict[str, object]) -> SimpleNamespace:
        if handle.get("utilization") is None:
            raise pynvml.NVMLError_NotSupported()
        return SimpleNamespace(gpu=handle["utilization"], memory=0)


@pytest.mark.skipif(HAS_NVIDIA_DRIVER, reason="this machine has an NVIDIA driver")
def test_read_gpus_without_a_driver_reads_no_gpus_and_initialises_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = []
    real_init = pynvml.nvmlInit

    def counted_init() -> None:
        attempts.append(1)
        real_init()

    monkeypatch.setattr(pynvml, "nvmlInit", counted_init)

    assert read_gpus() == []
    assert read_gpus() == []
    assert len(attempts) == 1


@pytest.mark.skipif(not HAS_NVIDIA_DRIVER, reason="no NVIDIA driver on this machine")
def test_read_gpus_reports_each_real_gpu() -> None:
    readings = read_gpus()

    assert [reading.index for reading in readings] == list(range(len(readings)))
    for reading in readings:
        assert reading.name
        assert 0 < reading.memory_used_bytes <= reading.memory_total_bytes
        assert 0.0 < reading.memory_used_fraction <= 1.0


def test_read_gpus_without_the_nvml_library_reads_no_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes `import pynvml` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "pynvml", None)

    assert read_gpus() == []


def test_devices_read_into_gpu_readings() -> None:
    nvml = StandInNvml(
        [
            {"name": b"NVIDIA L4", "used": 6 * GIB, "total": 24 * GIB, "utilization": 37},
            {"name": "NVIDIA A100-SXM4-40GB", "used": 0, "total": 40 * GIB, "utilization": None},
        ]
    )

    assert read_gpus_from(nvml) == [
        GpuReading(0, "NVIDIA L4", 6 * GIB, 24 * GIB, 37),
        GpuReading(1, "NVIDIA A100-SXM4-40GB", 0, 40 * GIB, None),
    ]


def test_memory_used_fraction_is_used_over_total() -> None:
    assert GpuReading(0, "NVIDIA L4", 6 * GIB, 24 * GIB, 0).memory_used_fraction == 0.25
    assert GpuReading(0, "unknown", 0, 0, None).memory_used_fraction == 0.0


def test_a_lost_gpu_reads_as_no_gpus_rather_than_a_crash() -> None:
    nvml = StandInNvml([{"name": "NVIDIA L4", "used": 0, "total": 24 * GIB, "lost": True}])

    assert read_gpus_from(nvml) == []
