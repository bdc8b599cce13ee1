"""benchmarks/gpu_check.py run for real on a machine without a GPU: its smoke path.

The check is made for a GPU machine without network (docs/performance.md, "GPU check"). Here
it must say what it skips, still select and run the GPU tests (which skip themselves), run the
server-against-in-process code in miniature on the CPU, write its report and exit 0. It is
pointed at a wheel folder that does not exist, so nothing is installed or downloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# The tests that need a GPU today, each marked @pytest.mark.gpu.
KNOWN_GPU_TESTS = {
    "tests.test_digits_example::test_handler_runs_on_gpu_id",
    "tests.test_system_metrics::test_real_gpus_report_per_device",
    "tests.test_tensorrt::test_engine_runs_in_process",
    "tests.test_tensorrt::test_engine_served_with_the_tensor_handler",
}
SMOKE_CONCURRENCY = {1, 4}
BATCH_SIZES = {1, 8}
# About 25 s on 2 cores; the rest is headroom for a busy machine.
RUN_TIMEOUT_S = 240


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="a GPU is here: make gpu-check runs the full check"
)
def test_without_a_gpu_the_check_says_what_it_skips_and_runs_in_miniature(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--smoke", "--out", str(out)]
    command += ["--wheels", str(tmp_path / "no-wheels")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    (results_file,) = out.glob("*-gpu-check.json")
    results = json.loads(results_file.read_text())
    stages = {stage["name"]: stage for stage in results["stages"]}
    assert [stage["status"] for stage in stages.values()] == [
        "passed",
        "skipped",
        "passed",
        "passed",
    ]
    assert stages["device"]["note"].startswith("no GPU: ")
    assert "no wheel folder at" in stages["wheels"]["note"]
    # Every GPU test was selected by its marker, and skipped itself for want of a GPU.
    outcomes = {test["test"]: test["outcome"] for test in results["gpu_tests"]}
    assert set(outcomes) >= KNOWN_GPU_TESTS
    assert set(outcomes.values()) == {"skipped"}

    serving = results["serving"]
    assert serving["device"] == "cpu"
    assert serving["worker_gpu"] == {"resnet-b1": [False], "resnet-b8": [False]}
    assert {limit["batch_size"] for limit in serving["in_process"]} == BATCH_SIZES
    runs = {(run["batch_size"], run["concurrency"]): run for run in serving["runs"]}
    assert set(runs) == {(size, c) for size in BATCH_SIZES for c in SMOKE_CONCURRENCY}
    for run in [*runs.values(), serving["ceiling"]]:
        assert run["requests_per_s"] > 0, run
        assert run["errors"] == 0, run
        assert run["frontend_cpu_s_per_1k"] > 0, run
        assert run["client_cpu"] > 0, run

    report = results_file.with_suffix(".md").read_text()
    assert report in completed.stdout  # printed as well as written
    assert "Skipped here:" in report
    assert "- the GPU itself: " in report
    assert "its miniature ran on the CPU instead" in report
    assert "| modelserve | 8 | 4 |" in report
    assert "| no-op ceiling | 8 | 4 |" in report
