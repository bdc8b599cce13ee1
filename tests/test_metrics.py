"""The metrics plane through the real server: TorchServe's names, the histogram, handler metrics."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest
from support import RunningServer, build_test_archive, sample, scrape, start_server, wait_until

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def metrics_server(tmp_path_factory: pytest.TempPathFactory, model_store: Path):
    # A store of its own: the shared one is listed whole by other tests (--models all).
    store = tmp_path_factory.mktemp("metrics_store")
    shutil.copy(model_store / "probe.mar", store)
    build_test_archive(store, "metered", "metrics_probe.py")
    server = start_server(tmp_path_factory.mktemp("metrics_server"), store)
    for url in ("probe.mar", "metered.mar"):
        response = httpx.post(
            server.management + "/models", params={"url": url, "initial_workers": 1}, timeout=60
        )
        assert response.status_code == 200, response.text
    yield server
    server.stop()


def test_request_counters_latency_and_histogram(metrics_server: RunningServer) -> None:
    server = metrics_server
    for _ in range(5):
        assert httpx.post(server.inference + "/predictions/probe", json={}).status_code == 200
    for _ in range(2):
        assert httpx.post(server.inference + "/predictions/probe/1.0", json={}).status_code == 200
    assert httpx.post(server.inference + "/predictions/ghost", json={}).status_code == 404
    samples = scrape(server)
    route = {"model_name": "probe", "hostname": HOST}
    assert sample(samples, "ts_inference_requests_total", **route, model_version="default") == 5
    assert sample(samples, "ts_inference_requests_total", **route, model_version="1.0") == 2
    latency = sample(samples, "ts_inference_latency_microseconds", **route, model_version="default")
    queue = sample(samples, "ts_queue_latency_microseconds", **route, model_version="default")
    assert latency > queue >= 0
    assert latency > 5 * 10  # at least tens of microseconds each
    version = {"model_name": "probe", "model_version": "1.0", "hostname": HOST}
    assert sample(samples, "modelserve_inference_latency_seconds_count", **version) == 7
    assert sample(samples, "modelserve_inference_latency_seconds_bucket", **version, le="+Inf") == 7
    assert sample(samples, "Requests4XX", Level="Host", Hostname=HOST) >= 1
    assert sample(samples, "Requests2XX", Level="Host", Hostname=HOST) >= 9  # + registrations
    assert sample(samples, "QueueTime", Level="Host", Hostname=HOST) >= 0
    assert sample(samples, "WorkerThreadTime", Level="Host", Hostname=HOST) >= 0
    load_times = [key for key in samples if key[0] == "WorkerLoadTime"]
    assert any(dict(labels)["WorkerName"].endswith("-probe_1.0") for _, labels in load_times)
    assert sample(samples, "modelserve_queue_depth", **version) == 0
    assert sample(samples, "modelserve_workers", **version, state="idle") == 1
    assert sample(samples, "modelserve_workers", **version, state="busy") == 0
    handler_time = sample(samples, "HandlerTime", ModelName="probe", Level="Model", Hostname=HOST)
    prediction_time = sample(
        samples, "PredictionTime", ModelName="probe", Level="Model", Hostname=HOST
    )
    assert 0 <= handler_time <= prediction_time


def test_name_filter(metrics_server: RunningServer) -> None:
    httpx.post(metrics_server.inference + "/predictions/probe", json={})
    samples = scrape(metrics_server, ["ts_inference_requests_total", "Requests2XX"])
    assert {name for name, _ in samples} == {"ts_inference_requests_total", "Requests2XX"}
    histogram = scrape(metrics_server, ["modelserve_inference_latency_seconds"])
    assert {name for name, _ in histogram} == {
        "modelserve_inference_latency_seconds_bucket",
        "modelserve_inference_latency_seconds_count",
        "modelserve_inference_latency_seconds_sum",
    }


def test_handler_metrics_of_every_kind(metrics_server: RunningServer) -> None:
    server = metrics_server
    for _ in range(3):
        assert httpx.post(server.inference + "/predictions/metered", json={}).status_code == 200
    samples = scrape(server)
    model = {"Shard": "a", "ModelName": "metered", "Level": "Model", "Hostname": HOST}
    assert sample(samples, "ProbeCalls", **model) == 3  # a counter adds up
    assert sample(samples, "ProbeTime", **model) == 12.5  # gauges keep the last value
    assert sample(samples, "ProbeSize", **model) == 3.0
    assert sample(samples, "ProbePercent", **model) == 42.0
    assert sample(samples, "ProbeHistogram_count", **model) == 3
    assert sample(samples, "ProbeHistogram_sum", **model) == 21.0
    assert sample(samples, "ProbeCached", Region="eu", Hostname=HOST) == 5.0
    assert sample(samples, "ProbeCached", Region="us", Hostname=HOST) == 6.0
    assert sample(samples, "ProbeErrors", Level="Error", Hostname=HOST) == 3


def test_legacy_and_log_modes(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path / "legacy", model_store, config={"metrics_mode": "legacy"})
    try:
        httpx.post(server.management + "/models", params={"url": "probe.mar", "initial_workers": 1})
        assert httpx.post(server.inference + "/predictions/probe", json={}).status_code == 200
        names = {name for name, _ in scrape(server)}
        assert names == {
            "ts_inference_requests_total",
            "ts_inference_latency_microseconds",
            "ts_queue_latency_microseconds",
        }
    finally:
        server.stop()
    server = start_server(tmp_path / "log", model_store, config={"metrics_mode": "log"})
    try:
        httpx.post(server.management + "/models", params={"url": "probe.mar", "initial_workers": 1})
        assert httpx.post(server.inference + "/predictions/probe", json={}).status_code == 200
        assert scrape(server) == {}
        wait_until(lambda: "[METRICS]ts_inference_requests_total.Count:1" in server.log())
    finally:
        server.stop()


def test_bad_metrics_config_stops_the_start(tmp_path: Path, model_store: Path) -> None:
    bad = tmp_path / "metrics.yaml"
    bad.write_text("ts_metrics:\n  counter:\n    - unit: Count\n")
    with pytest.raises(AssertionError, match="metrics_config"):
        start_server(tmp_path / "server", model_store, config={"metrics_config": str(bad)})
