"""The dashboard on the metrics plane of a real server: the page, its files, and the series
its charts draw, fed by real requests to real workers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from nvml_fakes import nvml_init_error
from support import RunningServer, start_server, wait_until

from modelserve.api.dashboard import STATIC_FILES

SLEEP_S = 0.2


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> Iterator[RunningServer]:
    """probe 1.0 (the default) and 2.0, a batching model and one that cannot load."""
    server = start_server(
        tmp_path_factory.mktemp("dashboard"),
        model_store,
        models=["probe=probe.mar"],
        config={"default_workers_per_model": "1"},
    )
    management = server.management + "/models"
    registrations = [
        {"url": "probe_v2.mar", "initial_workers": 1, "synchronous": "true"},
        {
            "url": "probe.mar",
            "model_name": "batched",
            "batch_size": 4,
            "max_batch_delay": 100,
            "initial_workers": 1,
            "synchronous": "true",
        },
        {"url": "broken.mar", "initial_workers": 1, "synchronous": "false"},
    ]
    try:
        for params in registrations:
            response = httpx.post(management, params=params, timeout=120)
            assert response.status_code in (200, 202), response.text
        # Each version has series from the first second after it registered.
        wait_until(lambda: len(series(server)["versions"]) == 4)
        yield server
    finally:
        server.stop()


def series(server: RunningServer, range_name: str = "minutes") -> dict[str, Any]:
    response = httpx.get(server.metrics + "/dashboard/series", params={"range": range_name})
    assert response.status_code == 200, response.text
    return response.json()


def of_version(body: dict[str, Any], model: str, version: str) -> dict[str, Any]:
    (found,) = [v for v in body["versions"] if (v["model"], v["version"]) == (model, version)]
    return found["series"]


def row(body: dict[str, Any], model: str, version: str) -> dict[str, Any]:
    (found,) = [r for r in body["models"] if (r["model"], r["version"]) == (model, version)]
    return found


def worker_pid(server: RunningServer, model: str) -> int:
    (worker,) = httpx.get(f"{server.management}/models/{model}").json()[0]["workers"]
    return worker["pid"]


def test_the_page_and_its_files_are_served_with_a_strict_policy(served: RunningServer) -> None:
    page = httpx.get(served.metrics + "/")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for name in ("uplot/uPlot.iife.min.js", "uplot/uPlot.min.css", "dashboard.js"):
        assert f'"/dashboard/static/{name}"' in page.text
    for name, media_type in STATIC_FILES.items():
        response = httpx.get(f"{served.metrics}/dashboard/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
    assert "uPlot" in httpx.get(served.metrics + "/dashboard/static/uplot/uPlot.iife.min.js").text


def test_the_dashboard_is_read_only_and_answers_bad_requests_clearly(
    served: RunningServer,
) -> None:
    assert httpx.post(served.metrics + "/").status_code == 405
    assert httpx.post(served.metrics + "/dashboard/series").status_code == 405
    missing = httpx.get(served.metrics + "/dashboard/static/../../server.py")
    assert missing.status_code == 404
    assert missing.json()["type"] == "ResourceNotFoundException"

    response = httpx.get(served.metrics + "/dashboard/series", params={"range": "hour"})
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid value for range: 'hour' (did you mean 'hours'?); accepted: minutes, hours, days"
    )
    response = httpx.get(served.metrics + "/dashboard/series", params={"step": "1"})
    assert response.status_code == 400
    assert "Unknown parameter 'step'" in response.json()["message"]
    # The metrics plane serves on.
    assert httpx.get(served.metrics + "/metrics").status_code == 200


def test_the_metrics_plane_describes_the_dashboard(served: RunningServer) -> None:
    paths = httpx.request("OPTIONS", served.metrics + "/").json()["paths"]

    assert set(paths) == {"/metrics", "/", "/dashboard/series"}
    (parameter,) = paths["/dashboard/series"]["get"]["parameters"]
    assert parameter["name"] == "range"
    assert parameter["schema"]["enum"] == ["minutes", "hours", "days"]


def test_each_version_has_its_requests_failures_and_latencies(served: RunningServer) -> None:
    with httpx.Client(base_url=served.inference, timeout=60) as client:
        for _ in range(3):
            ok = client.post("/predictions/probe/1.0", json={"sleep": SLEEP_S})
            assert ok.status_code == 200
            failed = client.post("/predictions/probe/2.0", json={"fail": "on purpose"})
            assert failed.status_code == 500

    def served_both() -> dict[str, Any] | None:
        body = series(served)
        v1, v2 = of_version(body, "probe", "1.0"), of_version(body, "probe", "2.0")
        if sum(v1["requests_per_s"]) and 100.0 in v2["failed_percent"]:
            return body
        return None

    body = wait_until(served_both)
    v1, v2 = of_version(body, "probe", "1.0"), of_version(body, "probe", "2.0")
    assert set(v1["failed_percent"]) <= {0.0, None}
    assert set(v2["failed_percent"]) <= {100.0, None}
    latencies = v1["latency_ms"]
    busy = [index for index, rate in enumerate(v1["requests_per_s"]) if rate]
    for index in busy:
        # Every request of probe 1.0 slept SLEEP_S in its handler; percentiles are within 1 %.
        for name in ("mean", "max"):
            assert latencies[name][index] >= SLEEP_S * 1000, (name, latencies)
        for name in ("p50", "p90", "p99"):
            assert latencies[name][index] >= SLEEP_S * 1000 * 0.99, (name, latencies)
        assert latencies["p50"][index] <= latencies["max"][index] * 1.02
    idle = [index for index, rate in enumerate(v1["requests_per_s"]) if not rate]
    assert all(latencies["p99"][index] is None for index in idle)
    assert body["time"] == sorted(body["time"]) and len(set(body["time"])) == len(body["time"])


def test_queued_requests_leave_in_batches_that_the_batch_chart_counts(
    served: RunningServer,
) -> None:
    pid = worker_pid(served, "batched")
    os.kill(pid, signal.SIGSTOP)
    try:
        url = served.inference + "/predictions/batched"
        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(httpx.post, url, json={}, timeout=60) for _ in range(4)]

            def queued() -> bool:
                last = of_version(series(served), "batched", "1.0")["queue_depth"][-1]
                return last is not None and last >= 2

            wait_until(queued, 60)
            os.kill(pid, signal.SIGCONT)
            assert [future.result().status_code for future in running] == [200] * 4
    finally:
        os.kill(pid, signal.SIGCONT)

    def batched_together() -> bool:
        sizes = of_version(series(served), "batched", "1.0")["batches_per_s"]
        return any(rate for label in ("2", "3-4") for rate in sizes[label] if rate)

    wait_until(batched_together)
    assert set(of_version(series(served), "batched", "1.0")["batches_per_s"]) == {"1", "2", "3-4"}


def test_a_killed_worker_is_counted_and_its_replacement_shown(served: RunningServer) -> None:
    before = row(series(served), "probe", "2.0")["worker_failures"]
    os.kill(worker_pid(served, "probe/2.0"), signal.SIGKILL)

    def failure_charted() -> bool:
        body = series(served)
        failed = of_version(body, "probe", "2.0")["workers"]["failed"]
        return row(body, "probe", "2.0")["worker_failures"] == before + 1 and any(failed)

    wait_until(failure_charted, 60)
    wait_until(lambda: row(series(served), "probe", "2.0")["workers"] == 1, 60)


def test_the_model_table_lists_every_version_with_its_default_and_load_error(
    served: RunningServer,
) -> None:
    def with_load_error() -> dict[str, Any] | None:
        body = series(served)
        return body if row(body, "broken", "1.0")["load_error"] else None

    body = wait_until(with_load_error, 60)

    assert [(r["model"], r["version"]) for r in body["models"]] == [
        ("batched", "1.0"),
        ("broken", "1.0"),
        ("probe", "1.0"),
        ("probe", "2.0"),
    ]
    assert row(body, "probe", "1.0")["default"] is True
    assert row(body, "probe", "2.0")["default"] is False
    broken = row(body, "broken", "1.0")
    assert broken["status"] == "LOADING"
    assert "weights.bin is missing from the archive" in broken["load_error"]
    assert row(body, "batched", "1.0")["batch_size"] == 4
    assert row(body, "probe", "1.0")["status"] == "AVAILABLE"
    for range_name in ("hours", "days"):
        longer = series(served, range_name)
        assert {(v["model"], v["version"]) for v in longer["versions"]} == {
            (r["model"], r["version"]) for r in body["models"]
        }
        assert longer["time"], range_name


def test_the_server_processes_are_charted(served: RunningServer) -> None:
    server = series(served)["server"]

    assert server["memory_mb"]["frontend"][-1] > 10
    # Three loaded workers (probe twice, batched); the broken one keeps restarting.
    assert server["memory_mb"]["workers"][-1] > 30
    assert server["cpu_percent"]["frontend"][-1] >= 0
    gpus = series(served)["gpus"]
    error = nvml_init_error()
    if error is None:
        assert gpus["count"] > 0 and gpus["unavailable"] is None
    else:
        assert gpus == {"count": 0, "unavailable": gpus["unavailable"]}
        assert gpus["unavailable"]


def test_latencies_do_not_need_the_prometheus_histogram(tmp_path: Path, model_store: Path) -> None:
    # metrics_mode=log has no histogram: the dashboard keeps its own latencies.
    server = start_server(
        tmp_path,
        model_store,
        models=["probe=probe.mar"],
        config={"metrics_mode": "log", "default_workers_per_model": "1"},
    )
    try:
        assert httpx.post(server.inference + "/predictions/probe", json={}).status_code == 200

        def latency_charted() -> bool:
            # (The version has no series until the first second after it registered.)
            charted = series(server)["versions"]
            return any(value for v in charted for value in v["series"]["latency_ms"]["p99"])

        wait_until(latency_charted)
    finally:
        server.stop()
