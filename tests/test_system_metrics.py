"""The system metrics collector, scraped through a real registry and the text exposition."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
import pytest
from nvml_fakes import UNSUPPORTED, fake_nvml, nvml_init_error
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelserve.telemetry.system_metrics import SystemMetricsCollector

HOSTNAME = "test-host"
HOST_UNITS = {
    "CPUUtilization": "Percent",
    "MemoryUsed": "Megabytes",
    "MemoryAvailable": "Megabytes",
    "MemoryUtilization": "Percent",
    "DiskUsage": "Gigabytes",
    "DiskAvailable": "Gigabytes",
    "DiskUtilization": "Percent",
}
GPU_UNITS = {
    "GPUUtilization": "Percent",
    "GPUMemoryUsed": "Megabytes",
    "GPUMemoryUtilization": "Percent",
}
PERCENTS = frozenset(
    name for name, unit in {**HOST_UNITS, **GPU_UNITS}.items() if unit == "Percent"
)
MB = 1024**2
GB = 1024**3
LOGGER = "modelserve.telemetry.system_metrics"


@dataclass
class Scrape:
    """One exposition of a registry holding only the collector under test."""

    text: str
    samples: dict[str, list[Sample]]

    def value(self, name: str) -> float:
        """The value of a host metric, which has exactly one sample."""
        (sample,) = self.samples[name]
        return sample.value

    def by_device(self, name: str) -> dict[str, float]:
        """A GPU metric's values keyed by DeviceId."""
        return {sample.labels["DeviceId"]: sample.value for sample in self.samples[name]}


def scrape(collector: SystemMetricsCollector) -> Scrape:
    """Expose ``collector`` alone as Prometheus text and parse it back."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    families = text_string_to_metric_families(text)
    return Scrape(text, {family.name: family.samples for family in families})


@pytest.fixture
def gpu_debug_lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The collector's "GPU metrics off" log lines so far, debug level included."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    yield lambda: [r.getMessage() for r in caplog.records if "GPU metrics off" in r.getMessage()]


def test_host_metrics_have_torchserve_names_units_and_labels() -> None:
    result = scrape(SystemMetricsCollector(HOSTNAME))

    for name, unit in HOST_UNITS.items():
        assert (
            f"# HELP {name} Torchserve prometheus gauge metric with unit: {unit}\n" in result.text
        )
        assert f"# TYPE {name} gauge\n" in result.text
        (sample,) = result.samples[name]
        assert sample.name == name
        assert sample.labels == {"Level": "Host", "Hostname": HOSTNAME}


def test_host_values_are_plausible() -> None:
    collector = SystemMetricsCollector(HOSTNAME)
    result = scrape(collector)
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage("/")

    for name in HOST_UNITS.keys() & PERCENTS:
        assert 0.0 <= result.value(name) <= 100.0, name
    total_mb = memory.total / MB
    # Other processes move memory between the two reads; a few percent of it is plenty.
    assert result.value("MemoryUsed") == pytest.approx(memory.used / MB, abs=0.05 * total_mb)
    assert result.value("MemoryAvailable") == pytest.approx(
        memory.available / MB, abs=0.05 * total_mb
    )
    used_and_available = result.value("MemoryUsed") + result.value("MemoryAvailable")
    assert used_and_available == pytest.approx(total_mb, rel=0.1)
    assert result.value("MemoryUtilization") == pytest.approx(memory.percent, abs=5)
    assert result.value("DiskUsage") == pytest.approx(disk.used / GB, abs=0.02 * disk.total / GB)
    assert result.value("DiskAvailable") == pytest.approx(
        disk.free / GB, abs=0.02 * disk.total / GB
    )
    assert result.value("DiskUsage") + result.value("DiskAvailable") <= disk.total / GB * 1.01
    assert result.value("DiskUtilization") == pytest.approx(disk.percent, abs=2)


def test_disabled_metrics_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml([{"used": GB, "total": 4 * GB, "gpu": 10}])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    wanted = {"CPUUtilization", "DiskUsage", "GPUMemoryUsed"}

    result = scrape(SystemMetricsCollector(HOSTNAME, enabled=wanted.__contains__))

    assert set(result.samples) == wanted


def test_nothing_enabled_exposes_nothing_and_leaves_nvml_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvml = fake_nvml([{"used": GB, "total": 4 * GB, "gpu": 10}])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    collector = SystemMetricsCollector(HOSTNAME, enabled=lambda name: False)

    assert scrape(collector).text == ""
    assert list(collector.describe()) == []
    assert nvml.init_calls == 0


def test_describe_lets_a_registry_refuse_duplicate_names() -> None:
    registry = CollectorRegistry()
    registry.register(SystemMetricsCollector(HOSTNAME))

    with pytest.raises(ValueError, match="CPUUtilization"):
        Gauge("CPUUtilization", "clash", registry=registry)


def test_gpu_metrics_per_device_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(
        [
            {"used": 2 * GB, "total": 8 * GB, "gpu": 37},
            {"used": 512 * MB, "total": 16 * GB, "gpu": 0},
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    collector = SystemMetricsCollector(HOSTNAME)

    first, second = scrape(collector), scrape(collector)

    assert nvml.init_calls == 1
    for result in (first, second):
        for name, unit in GPU_UNITS.items():
            assert f"# HELP {name} Torchserve prometheus gauge metric with unit: {unit}\n" in (
                result.text
            )
            assert [sample.labels for sample in result.samples[name]] == [
                {"Level": "Host", "DeviceId": "0", "Hostname": HOSTNAME},
                {"Level": "Host", "DeviceId": "1", "Hostname": HOSTNAME},
            ]
        assert result.by_device("GPUMemoryUsed") == {"0": 2048.0, "1": 512.0}
        assert result.by_device("GPUMemoryUtilization") == {"0": 25.0, "1": 3.125}
        assert result.by_device("GPUUtilization") == {"0": 37.0, "1": 0.0}


def test_a_gpu_reading_nvml_refuses_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(
        [
            {"used": GB, "total": 4 * GB, "gpu": 50},
            {"used": GB, "total": 2 * GB, "gpu": UNSUPPORTED},
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)

    result = scrape(SystemMetricsCollector(HOSTNAME))

    assert result.by_device("GPUUtilization") == {"0": 50.0}
    assert result.by_device("GPUMemoryUsed") == {"0": 1024.0, "1": 1024.0}
    assert result.by_device("GPUMemoryUtilization") == {"0": 25.0, "1": 50.0}


def test_no_pynvml_means_no_gpu_metrics(
    monkeypatch: pytest.MonkeyPatch, gpu_debug_lines: Callable[[], list[str]]
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes the import fail
    collector = SystemMetricsCollector(HOSTNAME)

    for _ in range(2):
        assert "GPU" not in scrape(collector).text
    assert len(gpu_debug_lines()) == 1


def test_nvml_that_cannot_start_means_no_gpu_metrics(
    monkeypatch: pytest.MonkeyPatch, gpu_debug_lines: Callable[[], list[str]]
) -> None:
    nvml = fake_nvml([], init_error=OSError("libnvidia-ml.so.1: cannot open shared object file"))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    collector = SystemMetricsCollector(HOSTNAME)

    for _ in range(2):
        assert "GPU" not in scrape(collector).text
    assert nvml.init_calls == 1
    assert gpu_debug_lines() == [
        "GPU metrics off: NVML is not available (libnvidia-ml.so.1: cannot open shared object file)"
    ]


def test_no_gpu_on_this_machine_means_no_gpu_metrics(
    gpu_debug_lines: Callable[[], list[str]],
) -> None:
    if nvml_init_error() is None:
        pytest.skip("this machine has a working NVIDIA GPU/driver")

    result = scrape(SystemMetricsCollector(HOSTNAME))

    assert not any(name.startswith("GPU") for name in result.samples)
    assert "GPU" not in result.text
    assert len(gpu_debug_lines()) == 1


@pytest.mark.gpu
def test_real_gpus_report_per_device() -> None:
    error = nvml_init_error()
    if error is not None:
        pytest.skip(f"no NVIDIA GPU/driver: {error}")
    import pynvml

    count = pynvml.nvmlDeviceGetCount()
    totals_mb = [
        pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).total / MB
        for index in range(count)
    ]

    result = scrape(SystemMetricsCollector(HOSTNAME))

    print("\n".join(line for line in result.text.splitlines() if "GPU" in line))
    devices = [str(index) for index in range(count)]
    for name in GPU_UNITS:
        assert [sample.labels for sample in result.samples[name]] == [
            {"Level": "Host", "DeviceId": device, "Hostname": HOSTNAME} for device in devices
        ], name
    for name in GPU_UNITS.keys() & PERCENTS:
        assert all(0.0 <= value <= 100.0 for value in result.by_device(name).values()), name
    for index, total_mb in enumerate(totals_mb):
        # the driver itself holds some memory on every GPU, so "used" is never zero
        assert 0.0 < result.by_device("GPUMemoryUsed")[str(index)] <= total_mb
