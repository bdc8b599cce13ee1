"""Acceptance: a real Prometheus server scrapes modelserve and reads back exact counts."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_harness import needs_prometheus, run_prometheus
from support import start_server

REQUESTS = 23


@needs_prometheus
def test_prometheus_reads_exact_request_count_and_histogram(
    tmp_path: Path, model_store: Path
) -> None:
    server = start_server(tmp_path / "server", model_store)
    try:
        registered = httpx.post(
            server.management + "/models",
            params={"url": "probe.mar", "model_name": "scraped", "initial_workers": 1},
            timeout=60,
        )
        assert registered.status_code == 200
        with httpx.Client(base_url=server.inference, timeout=30) as client:
            for _ in range(REQUESTS):
                assert client.post("/predictions/scraped", json={}).status_code == 200
        target = server.metrics.removeprefix("http://")
        with run_prometheus(tmp_path, target) as prometheus:
            prometheus.wait_for('up{job="modelserve"}', lambda r: r and r[0]["value"][1] == "1")
            count = prometheus.wait_for(
                'sum(ts_inference_requests_total{model_name="scraped"})',
                lambda r: bool(r),
            )
            assert float(count[0]["value"][1]) == REQUESTS
            histogram = prometheus.query(
                'sum(modelserve_inference_latency_seconds_count{model_name="scraped"})'
            )
            assert float(histogram[0]["value"][1]) == REQUESTS
            p99 = prometheus.query(
                "histogram_quantile(0.99, sum by (le) "
                '(modelserve_inference_latency_seconds_bucket{model_name="scraped"}))'
            )
            assert 0 < float(p99[0]["value"][1]) < 10
            cpu = prometheus.query('CPUUtilization{Level="Host"}')
            assert cpu and 0 <= float(cpu[0]["value"][1]) <= 100
    finally:
        server.stop()
