"""The dashboard's recorder on its own: readouts in at a clock the test turns, series out."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import psutil
import pytest
from nvml_fakes import UNSUPPORTED, fake_nvml, nvml_init_error

from modelserve.telemetry.dashboard_readings import VersionReadout, batch_size_buckets
from modelserve.telemetry.dashboard_series import RESOLUTIONS, DashboardRecorder
from modelserve.telemetry.frontend_metrics import VersionState
from modelserve.telemetry.latency_sketch import LatencySketch
from modelserve.telemetry.process_usage import ProcessUsage
from modelserve.telemetry.system_metrics import NvmlGpus, open_nvml

MB = 1024**2
GB = 1024**3
# A whole hour, so the minute and hour boundaries fall where the tests expect them.
START = 1_800_000_000.0
NO_GPU = NvmlGpus(None, [], "no GPU in this test")


class Clock:
    """Wall time that moves only when the test says."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Version:
    """A model version's counters, growing as the test serves 'requests'."""

    def __init__(self, name: str = "m", version: str = "1.0", batch_size: int = 4) -> None:
        self.readout = VersionReadout(
            state=VersionState(name, version, queued=0, busy=0, idle=1, starting=0),
            is_default=True,
            status="AVAILABLE",
            target_workers=1,
            batch_size=batch_size,
            load_error=None,
            requests=0,
            failures=0,
            latency_ns=0,
            batch_ns=0,
            executions_by_size={},
            worker_failures=0,
            worker_pids=(),
            latencies=[],
        )

    def serve(
        self, latencies_s: list[float], failed: int = 0, batch: int = 1, busy_s: float = 0.0
    ) -> None:
        """Requests answered since the last read: their latencies, how many failed, the
        size of the batches they ran in, and the workers' time on those batches."""
        readout = self.readout
        executions = dict(readout.executions_by_size)
        executions[batch] = executions.get(batch, 0) + len(latencies_s) // batch
        self.readout = replace(
            readout,
            requests=readout.requests + len(latencies_s),
            failures=readout.failures + failed,
            latency_ns=readout.latency_ns + round(sum(latencies_s) * 1e9),
            batch_ns=readout.batch_ns + round(busy_s * 1e9),
            executions_by_size=executions,
            latencies=list(latencies_s),
        )

    def idle(self) -> None:
        self.readout = replace(self.readout, latencies=[])


@pytest.fixture
def clock() -> Clock:
    return Clock()


def recorder_of(versions: list[Version], clock: Clock, usage: ProcessUsage | None = None):
    return DashboardRecorder(
        lambda: [version.readout for version in versions],
        usage or ProcessUsage(NO_GPU),
        clock,
    )


def tick(recorder: DashboardRecorder, clock: Clock, versions: list[Version]) -> None:
    """One second passes and the recorder samples; the versions then start a new second."""
    clock.now += 1
    recorder.sample()
    for version in versions:
        version.idle()


def series_of(body: dict, name: str = "m", version: str = "1.0") -> dict:
    (found,) = [v for v in body["versions"] if (v["model"], v["version"]) == (name, version)]
    return found["series"]


def exact_quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


# ----- the latency sketch


def test_sketch_quantiles_are_within_one_percent_of_the_exact_ones() -> None:
    generator = random.Random(7)
    values = [generator.lognormvariate(-6, 1.5) for _ in range(20_000)]
    sketch = LatencySketch()
    sketch.add_all(values)

    fractions = [0.01, 0.5, 0.9, 0.99, 0.999]
    for fraction, answer in zip(fractions, sketch.quantiles(fractions), strict=True):
        assert answer == pytest.approx(exact_quantile(values, fraction), rel=0.01), fraction


def test_merged_sketches_answer_as_one_sketch_of_all_the_values() -> None:
    generator = random.Random(3)
    parts = [[generator.uniform(0.001, 0.1) for _ in range(500)] for _ in range(4)]
    merged, whole = LatencySketch(), LatencySketch()
    for part in parts:
        sketch = LatencySketch()
        sketch.add_all(part)
        merged.merge(sketch)
    whole.add_all([value for part in parts for value in part])

    assert merged.counts == whole.counts
    assert merged.total == whole.total == 2000


def test_an_empty_sketch_has_no_quantiles_and_a_zero_duration_counts() -> None:
    assert LatencySketch().quantiles([0.5, 0.99]) == [None, None]
    sketch = LatencySketch()
    sketch.add_all([0.0])
    (answer,) = sketch.quantiles([0.5])
    assert answer is not None and answer < 1e-8


def test_batch_size_buckets_double_up_to_the_batch_size() -> None:
    assert batch_size_buckets(1) == [(1, 1)]
    assert batch_size_buckets(4) == [(1, 1), (2, 2), (3, 4)]
    assert batch_size_buckets(6) == [(1, 1), (2, 2), (3, 4), (5, 6)]
    assert batch_size_buckets(64)[-1] == (33, 64)


# ----- per second


def test_each_second_is_a_point_of_rates_failures_latencies_and_gauges(clock: Clock) -> None:
    version = Version(batch_size=4)
    recorder = recorder_of([version], clock)
    version.serve([0.010, 0.020, 0.030, 0.040], failed=1, batch=2, busy_s=0.25)
    tick(recorder, clock, [version])
    tick(recorder, clock, [version])  # a second without requests

    body = recorder.series("minutes")
    series = series_of(body, "m", "1.0")
    assert body["step_s"] == 1
    assert body["time"] == [START, START + 1]  # each second is named by its start
    assert series["requests_per_s"] == [4.0, 0.0]
    assert series["failed_percent"] == [25.0, None]
    assert series["latency_ms"]["mean"] == [25.0, None]
    assert series["latency_ms"]["max"] == [40.0, None]
    assert series["latency_ms"]["p50"][0] == pytest.approx(20.0, rel=0.01)
    assert series["latency_ms"]["p99"][0] == pytest.approx(40.0, rel=0.01)
    assert series["batches_per_s"] == {"1": [0.0, 0.0], "2": [2.0, 0.0], "3-4": [0.0, 0.0]}
    assert series["queue_depth"] == [0.0, 0.0]
    # The one ready worker spent a quarter of the first second on batches.
    assert series["workers"] == {
        "busy": [0.25, 0.0],
        "idle": [0.75, 1.0],
        "starting": [0.0, 0.0],
        "failed": [0.0, 0.0],
    }
    assert body["models"] == [
        {
            "model": "m",
            "version": "1.0",
            "default": True,
            "status": "AVAILABLE",
            "workers": 1,
            "starting": 0,
            "target_workers": 1,
            "worker_failures": 0,
            "batch_size": 4,
            "queued": 0,
            "load_error": None,
        }
    ]


def test_a_late_sample_divides_by_the_time_that_really_passed(clock: Clock) -> None:
    version = Version()
    recorder = recorder_of([version], clock)
    tick(recorder, clock, [version])
    version.serve([0.001] * 30)
    clock.now += 2  # the event loop was busy: three seconds between two reads
    tick(recorder, clock, [version])

    assert series_of(recorder.series("minutes"))["requests_per_s"][-1] == 10.0


def test_a_version_registered_anew_starts_from_zero_not_below(clock: Clock) -> None:
    version = Version()
    recorder = recorder_of([version], clock)
    version.serve([0.001] * 50)
    tick(recorder, clock, [version])
    version.readout = Version().readout  # unregistered and registered again: counters at 0
    version.serve([0.001] * 3)
    tick(recorder, clock, [version])

    assert series_of(recorder.series("minutes"))["requests_per_s"] == [50.0, 3.0]


# ----- minutes, hours


def test_a_minute_point_adds_up_its_seconds(clock: Clock) -> None:
    version = Version(batch_size=1)
    recorder = recorder_of([version], clock)
    generator = random.Random(1)
    served: list[float] = []
    for second in range(60):
        latencies = [generator.uniform(0.001, 0.05) for _ in range(second % 7)]
        served += latencies
        version.serve(latencies, failed=1 if second == 10 else 0)
        tick(recorder, clock, [version])
    version.serve([0.2])  # the first second of the next minute
    tick(recorder, clock, [version])

    body = recorder.series("hours")
    series = series_of(body)
    assert body["step_s"] == 60
    assert body["time"] == [START, START + 60]  # the minute done, then the one in progress
    # The JSON keeps three decimals.
    assert series["requests_per_s"][0] == pytest.approx(len(served) / 60, abs=1e-3)
    assert series["requests_per_s"][1] == 1.0
    assert series["failed_percent"][0] == pytest.approx(100 / len(served), abs=1e-3)
    mean_ms = sum(served) / len(served) * 1e3
    assert series["latency_ms"]["mean"][0] == pytest.approx(mean_ms, abs=1e-3)
    assert series["latency_ms"]["max"] == [round(max(served) * 1e3, 3), 200.0]
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        exact = exact_quantile(served, fraction) * 1e3
        assert series["latency_ms"][name][0] == pytest.approx(exact, rel=0.01), name
    assert series["batches_per_s"]["1"][0] == pytest.approx(len(served) / 60, abs=1e-3)
    # The day's range has the hour in progress, which holds everything so far.
    day = series_of(recorder.series("days"))
    assert day["requests_per_s"] == [pytest.approx((len(served) + 1) / 61, abs=1e-3)]


def test_gauges_are_averaged_over_the_step(clock: Clock) -> None:
    version = Version()
    recorder = recorder_of([version], clock)
    for queued in (0, 2, 4, 6):
        version.readout = replace(
            version.readout, state=replace(version.readout.state, queued=queued)
        )
        tick(recorder, clock, [version])

    assert series_of(recorder.series("minutes"))["queue_depth"] == [0.0, 2.0, 4.0, 6.0]
    assert series_of(recorder.series("hours"))["queue_depth"] == [3.0]


def test_the_oldest_points_make_room_and_a_gone_version_ages_out(clock: Clock) -> None:
    kept, gone = Version("kept"), Version("gone")
    versions = [kept, gone]
    recorder = recorder_of(versions, clock)
    gone.serve([0.001])
    tick(recorder, clock, versions)
    versions.remove(gone)  # unregistered
    capacity = RESOLUTIONS["minutes"].points
    for _ in range(capacity - 1):
        tick(recorder, clock, versions)

    body = recorder.series("minutes")
    assert len(body["time"]) == capacity
    assert body["time"][0] == START
    assert series_of(body, "gone")["requests_per_s"] == [1.0] + [None] * (capacity - 1)
    assert [row["model"] for row in body["models"]] == ["kept"]

    tick(recorder, clock, versions)  # the last second "gone" had a point in is pushed out

    body = recorder.series("minutes")
    assert body["time"][0] == START + 1 and body["time"][-1] == START + capacity
    assert [version["model"] for version in body["versions"]] == ["kept"]


def test_worker_failures_are_counted_in_the_step_they_happen(clock: Clock) -> None:
    version = Version()
    recorder = recorder_of([version], clock)
    tick(recorder, clock, [version])
    version.readout = replace(version.readout, worker_failures=2)
    tick(recorder, clock, [version])
    tick(recorder, clock, [version])

    assert series_of(recorder.series("minutes"))["workers"]["failed"] == [0.0, 2.0, 0.0]
    assert recorder.series("minutes")["models"][0]["worker_failures"] == 2


# ----- processes and GPUs


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """A real child process standing in for a worker."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield psutil.Process(process.pid)
    process.kill()
    process.wait()


def test_process_usage_adds_up_the_workers_and_skips_gone_ones(
    clock: Clock, sleeper: psutil.Process
) -> None:
    version = Version()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    version.readout = replace(version.readout, worker_pids=(sleeper.pid, gone.pid))
    recorder = recorder_of([version], clock)
    tick(recorder, clock, [version])

    server = recorder.series("minutes")["server"]
    (workers_mb,) = server["memory_mb"]["workers"]
    assert workers_mb == pytest.approx(sleeper.memory_info().rss / MB, rel=0.2)
    (frontend_mb,) = server["memory_mb"]["frontend"]
    assert frontend_mb == pytest.approx(psutil.Process().memory_info().rss / MB, rel=0.2)
    assert server["cpu_percent"]["frontend"][0] >= 0.0
    assert server["cpu_percent"]["workers"][0] >= 0.0


def test_gpus_are_read_through_nvml_per_device(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml = fake_nvml(
        [
            {"used": 2 * GB, "total": 8 * GB, "gpu": 40},
            {"used": 1 * GB, "total": 8 * GB, "gpu": UNSUPPORTED},
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    recorder = recorder_of([], clock, ProcessUsage())
    tick(recorder, clock, [])

    body = recorder.series("minutes")
    assert body["gpus"] == {"count": 2, "unavailable": None}
    assert body["server"]["gpu_utilization_percent"] == {"0": [40.0]}
    assert body["server"]["gpu_memory_mb"] == {"0": [2048.0], "1": [1024.0]}


@pytest.mark.parametrize(
    ("nvml", "reason"),
    [
        (None, "pynvml is not installed"),
        (fake_nvml([], init_error=OSError("libnvidia-ml.so.1: not found")), "NVML is not "),
        (fake_nvml([]), "NVML sees no GPU"),
    ],
    ids=["no pynvml", "no driver", "no device"],
)
def test_without_a_gpu_the_series_say_why(
    clock: Clock, monkeypatch: pytest.MonkeyPatch, nvml: object, reason: str
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None makes the import fail
    recorder = recorder_of([], clock, ProcessUsage())
    tick(recorder, clock, [])

    body = recorder.series("minutes")
    assert body["gpus"]["count"] == 0
    assert reason in body["gpus"]["unavailable"]
    assert not any(name.startswith("gpu") for name in body["server"])


@pytest.mark.gpu
def test_real_gpus_have_series_per_device(clock: Clock) -> None:
    error = nvml_init_error()
    if error is not None:
        pytest.skip(f"no NVIDIA GPU/driver: {error}")
    gpus = open_nvml()
    recorder = recorder_of([], clock, ProcessUsage(gpus))
    tick(recorder, clock, [])

    body = recorder.series("minutes")
    devices = [str(index) for index in range(len(gpus.handles))]
    assert body["gpus"] == {"count": len(devices), "unavailable": None}
    assert list(body["server"]["gpu_memory_mb"]) == devices
    for values in body["server"]["gpu_utilization_percent"].values():
        assert 0.0 <= values[0] <= 100.0
