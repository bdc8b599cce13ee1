"""TorchServe's system metrics (host CPU, memory, disk; NVIDIA GPUs) as a Prometheus collector.

Names, units and labels are TorchServe 0.12's (``ts/configs/metrics.yaml``). TorchServe samples
them every ``metric_time_interval``; here they are read when Prometheus scrapes, so a value is
never older than the scrape that carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

import psutil
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MEGABYTE = 1024**2
GIGABYTE = 1024**3
DISK_PATH = "/"
HOST_LABELS = ("Level", "Hostname")
GPU_LABELS = ("Level", "DeviceId", "Hostname")
LEVEL = "Host"

# name -> unit, in metrics.yaml's order so /metrics lists them as TorchServe does
HOST_METRICS = {
    "CPUUtilization": "Percent",
    "MemoryUsed": "Megabytes",
    "MemoryAvailable": "Megabytes",
    "MemoryUtilization": "Percent",
    "DiskUsage": "Gigabytes",
    "DiskAvailable": "Gigabytes",
    "DiskUtilization": "Percent",
}
GPU_METRICS = {
    "GPUUtilization": "Percent",
    "GPUMemoryUsed": "Megabytes",
    "GPUMemoryUtilization": "Percent",
}


def _family(name: str, unit: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        name, f"Torchserve prometheus gauge metric with unit: {unit}", labels=labels
    )


@dataclass(frozen=True)
class NvmlGpus:
    """NVML initialised, with a handle per GPU; ``unavailable`` says why there is no GPU to
    read (pynvml missing, no driver, no device), None when there is."""

    nvml: ModuleType | None
    handles: list[object]
    unavailable: str | None

    def read(self) -> list[dict[str, float]]:
        """Each GPU's readings now (``GPUUtilization``, ``GPUMemoryUsed``,
        ``GPUMemoryUtilization``, as far as NVML tells), by device index."""
        if self.nvml is None:
            return []
        return [_gpu_values(self.nvml, handle) for handle in self.handles]


def open_nvml() -> NvmlGpus:
    """NVML and the GPUs it sees; none, with the reason, where there is none to use."""
    try:
        import pynvml
    except ImportError as exc:
        logger.debug("GPU metrics off: pynvml is not installed (%s)", exc)
        return NvmlGpus(None, [], f"pynvml is not installed ({exc})")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
    # A missing or mismatched driver surfaces as NVMLError, OSError or worse; whatever it is,
    # the server must still start, just without GPU metrics.
    except Exception as exc:
        logger.debug("GPU metrics off: NVML is not available (%s)", exc)
        return NvmlGpus(None, [], f"NVML is not available ({exc})")
    return NvmlGpus(pynvml, handles, None if handles else "NVML sees no GPU")


def _host_values() -> dict[str, float]:
    """The host readings, each in its TorchServe unit."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(DISK_PATH)
    return {
        "CPUUtilization": psutil.cpu_percent(interval=None),
        "MemoryUsed": memory.used / MEGABYTE,
        "MemoryAvailable": memory.available / MEGABYTE,
        "MemoryUtilization": memory.percent,
        "DiskUsage": disk.used / GIGABYTE,
        "DiskAvailable": disk.free / GIGABYTE,
        "DiskUtilization": disk.percent,
    }


def _gpu_values(nvml: ModuleType, handle: object) -> dict[str, float]:
    """What NVML can tell about one GPU now; a reading it refuses is left out, not raised."""
    values: dict[str, float] = {}
    try:
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        values["GPUMemoryUsed"] = memory.used / MEGABYTE
        # TorchServe 0.12 reports the share of memory in use (nvgpu's mem_used_percent),
        # not NVML's memory-controller busy time.
        if memory.total:
            values["GPUMemoryUtilization"] = 100.0 * memory.used / memory.total
    except nvml.NVMLError as exc:
        logger.debug("GPU memory unreadable: %s", exc)
    # Read apart from memory: some devices (MIG slices) report memory but not utilisation.
    try:
        values["GPUUtilization"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nvml.NVMLError as exc:
        logger.debug("GPU utilization unreadable: %s", exc)
    return values


class SystemMetricsCollector(Collector):
    """Host and GPU gauges with TorchServe's names, computed from psutil and NVML at scrape time.

    ``enabled(name)`` says whether a metric is configured; it is asked once, here, since the
    metrics config does not change while the server runs.
    """

    def __init__(self, hostname: str, enabled: Callable[[str], bool] = lambda name: True) -> None:
        self._hostname = hostname
        self._host_metrics = {name: unit for name, unit in HOST_METRICS.items() if enabled(name)}
        gpu_metrics = {name: unit for name, unit in GPU_METRICS.items() if enabled(name)}
        # NVML is initialised once for the process's life, and only when a GPU metric is wanted.
        self._gpus = open_nvml() if gpu_metrics else NvmlGpus(None, [], "no GPU metric is enabled")
        self._gpu_metrics = gpu_metrics if self._gpus.nvml is not None else {}
        # psutil measures CPU use since its previous call; this call makes the first scrape's
        # value cover the time since startup instead of being a meaningless 0.0.
        psutil.cpu_percent(interval=None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families this collector yields, without samples.

        A registry uses this to check for duplicate names instead of running a full scrape.
        """
        for name, unit in self._host_metrics.items():
            yield _family(name, unit, HOST_LABELS)
        for name, unit in self._gpu_metrics.items():
            yield _family(name, unit, GPU_LABELS)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Current values of every enabled metric."""
        if self._host_metrics:
            values = _host_values()
            for name, unit in self._host_metrics.items():
                family = _family(name, unit, HOST_LABELS)
                family.add_metric([LEVEL, self._hostname], values[name])
                yield family
        if self._gpu_metrics:
            families = {
                name: _family(name, unit, GPU_LABELS) for name, unit in self._gpu_metrics.items()
            }
            for index, readings in enumerate(self._gpus.read()):
                for name, value in readings.items():
                    if name in families:
                        families[name].add_metric([LEVEL, str(index), self._hostname], value)
            yield from families.values()
