"""The server comparison (``make bench``) end to end at smoke size: modelserve and the
in-process limit only, real wrk, the JSON, the markdown and the plots."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMPARE = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_servers.py"
MODELS = {"noop", "digits"}
SMOKE_CONCURRENCY = {1, 4}
# About 40 s on 2 cores, most of it building the models; the rest is headroom.
RUN_TIMEOUT_S = 240


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_compare_smoke_run_writes_report_json_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "results"
    # An empty cache: no competitor is installed, so none runs and nothing needs the network.
    completed = subprocess.run(
        [sys.executable, str(COMPARE), "--smoke", "--out", str(out), "--cache", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (results_file,) = out.glob("*-compare.json")
    results = json.loads(results_file.read_text())
    assert results["failures"] == []
    assert results["settings"]["servers"] == ["modelserve"]
    runs = {(run["model"], run["concurrency"]): run for run in results["runs"]}
    assert set(runs) == {(model, c) for model in MODELS for c in SMOKE_CONCURRENCY}
    for key, run in runs.items():
        assert run["server"] == "modelserve"
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
        assert run["max_ms"] >= run["p99_ms"] > 0, key
        percents = [percent for percent, _ in run["cdf"]]
        assert percents == sorted(percents) and percents[-1] == 100, key
    assert {limit["model"] for limit in results["in_process"]} == MODELS
    assert results["cold_start_s"]["modelserve"] > 0
    assert results["register_s"]["modelserve"] > 0
    assert results["memory_mb"]["modelserve"]["workers"] > 0
    assert results["ping"]["requests_per_s"] > 0
    assert results["ping"]["errors"] == 0
    assert {goal["met"] for goal in results["goals"]} == {None}  # no TorchServe, no resnet

    report = results_file.with_suffix(".md").read_text()
    assert "## Goals" in report
    assert "### digits, 1 worker, unbatched" in report
    plots = {path.name for path in out.glob("*.png")}
    stem = results_file.stem
    assert plots == {
        f"{stem}-{kind}-{model}.png" for kind in ("throughput", "latency") for model in MODELS
    }
    for name in plots:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
        assert f"]({name})" in report
