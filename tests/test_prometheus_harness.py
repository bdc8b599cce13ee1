"""The Prometheus harness itself: a real Prometheus scrapes a tiny exporter and answers PromQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_harness import PrometheusQueryError, needs_prometheus, run_prometheus
from support import free_ports

pytestmark = needs_prometheus

INCREMENTS = 7


@pytest.fixture
def exporter() -> Iterator[tuple[str, Counter]]:
    """A prometheus_client HTTP exporter on loopback: its ``host:port`` and its one counter."""
    registry = CollectorRegistry()
    counter = Counter(
        "harness_probe", "Counts the harness self-test's increments.", registry=registry
    )
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}", counter
    server.shutdown()
    server.server_close()
    thread.join()


def test_prometheus_scrapes_the_target_and_answers_promql(
    tmp_path: Path, exporter: tuple[str, Counter]
) -> None:
    target, counter = exporter
    for _ in range(INCREMENTS):
        counter.inc()

    with run_prometheus(tmp_path, target, scrape_interval_s=0.5) as prometheus:
        result = prometheus.wait_for("harness_probe_total", lambda result: bool(result), timeout=30)
        (series,) = result
        assert series["metric"] == {
            "__name__": "harness_probe_total",
            "instance": target,
            "job": "modelserve",
        }
        assert float(series["value"][1]) == INCREMENTS
        up = prometheus.query(f'up{{instance="{target}"}}')
        assert [float(sample["value"][1]) for sample in up] == [1.0]
        with pytest.raises(PrometheusQueryError, match="bad_data"):
            prometheus.query("harness_probe_total{")

    assert prometheus.process.poll() is not None


def test_prometheus_stops_when_the_test_fails(tmp_path: Path) -> None:
    (unused,) = free_ports(1)
    with (
        pytest.raises(RuntimeError, match="boom"),
        run_prometheus(tmp_path, f"127.0.0.1:{unused}") as prometheus,
    ):
        raise RuntimeError("boom")

    assert prometheus.process.poll() is not None
