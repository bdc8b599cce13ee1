"""CPU and memory of the server's own processes (the frontend, the workers) and its GPUs, read
once a second for the dashboard."""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from modelserve.telemetry.dashboard_readings import SeriesKey
from modelserve.telemetry.system_metrics import MEGABYTE, NvmlGpus, open_nvml


class ProcessUsage:
    """Reads the frontend's and the workers' CPU (percent of one core, as ``top`` shows it)
    and resident memory, and each GPU's utilisation and memory where NVML sees one."""

    def __init__(self, gpus: NvmlGpus | None = None) -> None:
        self.gpus = open_nvml() if gpus is None else gpus
        self._frontend = psutil.Process()
        # psutil measures CPU use between two calls on the same object: keep one per process,
        # and make this first call so the first read covers the time since now.
        self._frontend.cpu_percent(None)
        self._workers: dict[int, psutil.Process] = {}

    def read(self, worker_pids: Iterable[int]) -> dict[SeriesKey, float]:
        """The gauges now; ``worker_pids`` are the workers alive (a gone one is skipped)."""
        cpu, memory = _usage(self._frontend)
        values = {("cpu_percent", "frontend"): cpu, ("memory_mb", "frontend"): memory}
        workers_cpu = workers_memory = 0.0
        alive: dict[int, psutil.Process] = {}
        for pid in worker_pids:
            process = self._workers.get(pid)
            try:
                if process is None:
                    process = psutil.Process(pid)
                    process.cpu_percent(None)  # the baseline; its first share comes next read
                cpu, memory = _usage(process)
            except psutil.Error:  # exited since the pool listed it
                continue
            alive[pid] = process
            workers_cpu += cpu
            workers_memory += memory
        self._workers = alive
        values["cpu_percent", "workers"] = workers_cpu
        values["memory_mb", "workers"] = workers_memory
        for index, readings in enumerate(self.gpus.read()):
            device = str(index)
            if "GPUUtilization" in readings:
                values["gpu_utilization_percent", device] = readings["GPUUtilization"]
            if "GPUMemoryUsed" in readings:
                values["gpu_memory_mb", device] = readings["GPUMemoryUsed"]
        return values


def _usage(process: psutil.Process) -> tuple[float, float]:
    """CPU percent since the last call, and resident memory in MB."""
    with process.oneshot():
        return process.cpu_percent(None), process.memory_info().rss / MEGABYTE
