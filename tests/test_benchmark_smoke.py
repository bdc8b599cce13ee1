"""The benchmark scripts end to end at smoke size: real servers, real load (wrk or Python
clients), their result files.

``make bench`` (compare_servers.py) runs modelserve (``/predictions`` and ``/v2/.../infer``) and
the in-process limit only here: with an empty venv cache no competitor is installed, so nothing
needs the network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MODELS = {"noop", "digits"}
COMPARE_MODELS = {"noop", "digits", "mlp"}  # the comparison's smoke run adds the tiny MLP
SMOKE_CONCURRENCY = {1, 4}
PROTOCOLS = {
    "/predictions JSON",
    "v2 REST JSON",
    "v2 REST binary",
    "TF Serving REST",
    "grps HTTP gtensors",
    "TorchServe gRPC",
    "v2 gRPC",
    "grps gRPC",
}
PYTHON_BACKEND_PROTOCOLS = {"v2 REST JSON", "v2 gRPC"}
BATCHING_DEPLOYMENTS = {"one", "shared"}
STREAMING_PROTOCOLS = {
    "/predictions (chunked)",
    "generate_stream (SSE)",
    "gRPC StreamPredictions",
    "gRPC StreamPredictions2",
}
PIPELINE_WAYS = {"pipeline", "client chain"}
PAYLOAD_WAYS = {"JPEG raw", "JPEG multipart", "v2 binary REST", "v2 gRPC"}
BATCHING_DELAYS_MS = {0, 5, 20}
# A smoke run takes 5-40 s on 2 cores (the comparison mostly builds models); the rest is
# headroom for a busy machine.
RUN_TIMEOUT_S = 240

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)


def smoke_run(script: str, out: Path, pattern: str, *extra: str) -> tuple[Path, dict[str, Any]]:
    """Run ``benchmarks/<script> --smoke``; its one results file matching ``pattern``, read."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (results_file,) = out.glob(pattern)
    assert results_file.with_suffix(".md").is_file()
    return results_file, json.loads(results_file.read_text())


@needs_wrk
def test_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    _, results = smoke_run("run_load.py", tmp_path, "*.json")
    runs = {(run["model"], run["concurrency"]): run for run in results["results"]}
    assert set(runs) == {(model, c) for model in MODELS for c in SMOKE_CONCURRENCY}
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
    assert {limit["model"] for limit in results["in_process"]} == MODELS
    assert results["ping"]["requests_per_s"] > 0
    assert results["ping"]["errors"] == 0


@needs_wrk
def test_protocol_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    _, results = smoke_run("run_protocols.py", tmp_path, "*-protocols.json")
    runs = {(run["protocol"], run["concurrency"]): run for run in results["runs"]}
    assert set(runs) == {(protocol, c) for protocol in PROTOCOLS for c in SMOKE_CONCURRENCY}
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
    for ceiling in results["ceilings"].values():
        assert ceiling["requests_per_s"] > 0
        assert ceiling["errors"] == 0


@needs_wrk
def test_frontend_cost_smoke_run_measures_cpu_per_request(tmp_path: Path) -> None:
    _, results = smoke_run("run_frontend_cost.py", tmp_path, "*-frontend-cost.json")
    runs = {(run["target"], run["concurrency"]): run for run in results["runs"]}
    targets = {target for target, _ in runs}
    # noop through /predictions, digits through /predictions and v2 REST; each twice.
    assert len(targets) == 6
    assert {c for _, c in runs} == SMOKE_CONCURRENCY
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
        # /proc counts in clock ticks: a second of load costs the frontend some of them.
        assert run["frontend_cpu_s_per_1k"] > 0, (key, run)
        assert run["cpu_s_per_1k"] >= run["frontend_cpu_s_per_1k"], (key, run)
    assert {(row["target"], row["concurrency"]) for row in results["medians"]} == set(runs)


@needs_wrk
def test_batching_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    results_file, results = smoke_run("run_batching.py", tmp_path, "*-batching.json")
    runs = {
        (run["deployment"], run["concurrency"], run["max_batch_delay_ms"]): run
        for run in results["runs"]
    }
    assert set(runs) == {
        (deployment, c, delay)
        for deployment in BATCHING_DEPLOYMENTS
        for c in SMOKE_CONCURRENCY
        for delay in BATCHING_DELAYS_MS
    }
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
        assert run["batches"] > 0, key
        if run["concurrency"] == 1:  # the handler logged its batches: one client, one request
            assert run["mean_batch"] == 1.0, key
    assert len(results["medians"]) == len(runs)
    report = results_file.with_suffix(".md").read_text()
    assert "### 1 worker" in report
    assert "### 4 workers, one shared device" in report


@needs_wrk
def test_python_backend_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    results_file, results = smoke_run("run_python_backend.py", tmp_path, "*-python-backend.json")
    variants = {
        (row["kind"], row["threads"], row["batch_size"]) for row in results["summary"]["in_process"]
    }
    # One thread with batches of 1 and of min(c, 8); c threads with one request each.
    assert variants == {
        ("batch", 1, 1),
        ("batch", 1, 4),
        ("threads", 4, 1),
    }
    for run in results["in_process_runs"]:
        assert run["requests_per_s"] > 0, run
    runs = {(run["protocol"], run["concurrency"]): run for run in results["server_runs"]}
    assert set(runs) == {(p, c) for p in PYTHON_BACKEND_PROTOCOLS for c in SMOKE_CONCURRENCY}
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
        # The statistics extension saw every answered request in some execute() call.
        executed = sum(int(size) * count for size, count in run["batches"].items())
        assert executed >= run["requests"], (key, run)
        if run["concurrency"] == 1:  # one client: one request per execute()
            assert run["batches"] == {"1": run["executions"]}, key
    report = results_file.with_suffix(".md").read_text()
    assert "| v2 REST JSON | 4 |" in report
    assert "| v2 gRPC | 4 |" in report


def test_hot_reload_smoke_run_swaps_versions_without_a_failed_request(tmp_path: Path) -> None:
    # No wrk: its clients are Python. Timings are not asserted, only what was served.
    _, results = smoke_run("hot_reload.py", tmp_path, "*-hot-reload.json")
    result = results["result"]
    assert result["requests"] > 0
    assert (result["failures"], result["hung"]) == (0, 0), result["failure_samples"]
    assert set(result["per_version"]) == {"1", "3"}
    assert sum(result["per_version"].values()) == result["requests"]
    assert result["half_written_ignored"] and result["served_after_removal"]
    assert result["version_3_served_after_s"] is not None


def test_startup_smoke_run_registers_on_the_spare_only_with_it_on(tmp_path: Path) -> None:
    # Timings are not asserted, only what served the registration.
    _, results = smoke_run("run_startup.py", tmp_path, "*-startup.json")
    summary = results["summary"]
    assert summary["spare on"]["served_by_spare"] == summary["spare on"]["runs"] == 1
    assert summary["spare off"]["served_by_spare"] == 0
    assert summary["spare off"]["spare_rss_mib"] is None
    assert summary["spare on"]["spare_rss_mib"] > 0


@needs_wrk
def test_compare_smoke_run_writes_report_json_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "results"
    results_file, results = smoke_run(
        "compare_servers.py", out, "*-compare.json", "--cache", str(tmp_path)
    )
    assert results["failures"] == []
    assert results["settings"]["servers"] == ["modelserve", "modelserve-v2"]
    runs = {(run["server"], run["model"], run["concurrency"]): run for run in results["runs"]}
    # /v2/.../infer serves the tiny MLP only, with the same handler answering v2 JSON.
    assert set(runs) == {
        ("modelserve", model, c) for model in COMPARE_MODELS for c in SMOKE_CONCURRENCY
    } | {("modelserve-v2", "mlp", c) for c in SMOKE_CONCURRENCY}
    assert len(results["round_runs"]) == len(runs)  # one round: each median is its one run
    for key, run in runs.items():
        assert run["requests_per_s"] > 0, key
        assert run["errors"] == 0, (key, run)
        assert run["max_ms"] >= run["p99_ms"] > 0, key
        percents = [percent for percent, _ in run["cdf"]]
        assert percents == sorted(percents) and percents[-1] == 100, key
        # What the load cost the server's process tree: the frontend and its worker.
        assert run["cpu_s_per_1k"] > 0, key
        assert run["rss_mib"] > results["memory_mb"][run["server"]]["frontend"], key
    assert {limit["model"] for limit in results["in_process"]} == COMPARE_MODELS
    assert results["cold_start_s"]["modelserve"] > 0
    assert results["register_s"]["modelserve"] > 0
    assert results["memory_mb"]["modelserve"]["workers"] > 0
    assert results["ping"]["requests_per_s"] > 0
    assert results["ping"]["errors"] == 0
    assert {goal["met"] for goal in results["goals"]} == {None}  # no TorchServe, no resnet

    report = results_file.with_suffix(".md").read_text()
    assert "## Goals" in report
    assert "### digits, 1 worker, unbatched" in report
    meeting = report.split("## All servers on the tiny MLP")[1].split("##")[0]
    assert "| modelserve /predictions |" in meeting
    assert "| modelserve /v2/.../infer |" in meeting
    plots = {path.name for path in out.glob("*.png")}
    stem = results_file.stem
    assert plots == {
        f"{stem}-{kind}-{model}.png"
        for kind in ("throughput", "latency", "cost")
        for model in COMPARE_MODELS
    }
    for name in plots:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
        assert f"]({name})" in report


def test_pipeline_overhead_smoke_run_writes_results_without_errors(tmp_path: Path) -> None:
    results_file, results = smoke_run(
        "run_pipeline_overhead.py", tmp_path, "*-pipeline-overhead.json"
    )
    runs = {(run["protocol"], run["concurrency"], run["way"]) for run in results["runs"]}
    assert runs == {
        (protocol, c, way)
        for protocol in PYTHON_BACKEND_PROTOCOLS
        for c in SMOKE_CONCURRENCY
        for way in PIPELINE_WAYS
    }
    for run in results["runs"]:
        assert run["requests_per_s"] > 0, run
        assert run["errors"] == 0, run
    assert "| pipeline / chain req/s |" in results_file.with_suffix(".md").read_text()


def test_streaming_smoke_run_times_every_protocol_and_checks_every_piece(tmp_path: Path) -> None:
    results_file, results = smoke_run("run_streaming.py", tmp_path, "*-streaming.json")
    assert set(results["latency"]) == STREAMING_PROTOCOLS
    for label, run in results["latency"].items():
        assert 0 < run["first_s"] <= run["total_s"], label
    (load,) = results["load"]
    assert load["complete"] == load["streams"] > 0
    assert load["rss_peak_mb"] >= load["rss_before_mb"] > 0
    assert "| first piece s |" in results_file.with_suffix(".md").read_text()


@needs_wrk
def test_payloads_smoke_run_checks_answers_and_writes_results(tmp_path: Path) -> None:
    # The run itself fails unless every way's answer names the class the handler answers
    # in-process.
    _, results = smoke_run("run_payloads.py", tmp_path, "*-payloads.json")
    rows = {(row["way"], row["concurrency"]): row for row in results["summary"]}
    assert set(rows) == {(way, c) for way in PAYLOAD_WAYS for c in SMOKE_CONCURRENCY}
    for key, row in rows.items():
        assert row["server"]["requests_per_s"] > 0, key
        assert row["in_process"]["requests_per_s"] > 0, key
        assert row["mb_per_s"] > 0, key
        assert row["errors"] == 0, (key, row)
    tensor_body = 3 * 224 * 224 * 4
    sizes = {entry["way"]: entry["payload_bytes"] for entry in results["ways"]}
    assert sizes["v2 binary REST"] > tensor_body
    assert sizes["v2 gRPC"] > tensor_body
    assert {entry["way"] for entry in results["copies"]} == PAYLOAD_WAYS
    assert all(entry["us"] > 0 for entry in results["copies"])
