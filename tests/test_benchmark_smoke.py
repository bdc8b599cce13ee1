"""The load benchmark end to end at smoke size: real server, real wrk, a results file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN_LOAD = Path(__file__).resolve().parents[1] / "benchmarks" / "run_load.py"
MODELS = {"noop", "digits"}
SMOKE_CONCURRENCY = {1, 4}
# The smoke run itself takes about 20 s on 2 cores; the rest is headroom for a busy machine.
RUN_TIMEOUT_S = 120


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(RUN_LOAD), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (results_file,) = tmp_path.glob("*.json")
    assert results_file.with_suffix(".md").is_file()
    results = json.loads(results_file.read_text())
    runs = {(run["model"], run["concurrency"]): run for run in results["results"]}
    assert set(runs) == {(model, c) for model in MODELS for c in SMOKE_CONCURRENCY}
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
    assert {limit["model"] for limit in results["in_process"]} == MODELS
    assert results["ping"]["requests_per_s"] > 0
    assert results["ping"]["errors"] == 0


RUN_PROTOCOLS = RUN_LOAD.with_name("run_protocols.py")
PROTOCOLS = {"/predictions JSON", "v2 REST JSON", "v2 REST binary", "v2 gRPC"}


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_protocol_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(RUN_PROTOCOLS), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (results_file,) = tmp_path.glob("*-protocols.json")
    assert results_file.with_suffix(".md").is_file()
    results = json.loads(results_file.read_text())
    runs = {(run["protocol"], run["concurrency"]): run for run in results["runs"]}
    assert set(runs) == {(protocol, c) for protocol in PROTOCOLS for c in SMOKE_CONCURRENCY}
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
    for ceiling in results["ceilings"].values():
        assert ceiling["requests_per_s"] > 0
        assert ceiling["errors"] == 0
