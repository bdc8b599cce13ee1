"""A real Prometheus server for tests: it scrapes one target, and tests ask it PromQL.

Uses the ``prometheus`` binary from Debian's package (``make test`` installs it where it can);
tests that need it carry ``needs_prometheus`` and are skipped where it is missing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_ports, wait_until

PROMETHEUS = Path("/usr/bin/prometheus")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_CHARS = 3000

needs_prometheus = pytest.mark.skipif(
    not PROMETHEUS.exists(),
    reason=f"Prometheus is not installed ({PROMETHEUS}); `make test` installs it via apt-get",
)


class PrometheusQueryError(RuntimeError):
    """Prometheus refused a query (bad PromQL, timeout …); the message carries its reason."""


@dataclass
class PrometheusServer:
    """A running Prometheus, reachable on loopback at ``url``."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def query(self, promql: str) -> list[Any]:
        """Evaluate ``promql`` now through ``/api/v1/query``; the API's ``data.result``.

        For a vector that is a list of ``{"metric": {label: value}, "value": [time, "text"]}``
        (values are strings, as Prometheus sends them).
        """
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        try:
            body = response.json()
        except ValueError:
            response.raise_for_status()
            raise
        if body.get("status") != "success":
            raise PrometheusQueryError(
                f"{promql!r}: {body.get('errorType')}: {body.get('error')} "
                f"(HTTP {response.status_code})"
            )
        return body["data"]["result"]

    def wait_for(
        self, promql: str, predicate: Callable[[list[Any]], bool], timeout: float = 30.0
    ) -> list[Any]:
        """Query ``promql`` until ``predicate`` holds for the result, and return that result."""
        last: list[Any] = []

        def holds() -> bool:
            nonlocal last
            last = self.query(promql)
            return predicate(last)

        try:
            wait_until(holds, timeout=timeout, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(
                f"{promql!r} did not satisfy the predicate within {timeout} s; "
                f"last result: {last}\n--- prometheus log ---\n{self.log_tail()}"
            ) from exc
        return last

    def log_tail(self) -> str:
        """The end of Prometheus's own log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def _duration(seconds: float) -> str:
    # Prometheus durations take integers with a unit, not decimals.
    return f"{max(1, round(seconds * 1000))}ms"


def _write_config(path: Path, scrape_target: str, scrape_interval_s: float) -> None:
    interval = _duration(scrape_interval_s)
    config = {
        # the timeout may not exceed the interval, and its default (10 s) would
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            {
                "job_name": "modelserve",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [scrape_target]}],
            }
        ],
    }
    # JSON is YAML, and json.dumps quotes whatever the target holds
    path.write_text(json.dumps(config, indent=2))


def _is_ready(server: PrometheusServer) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(
            f"prometheus exited with {server.process.returncode} while starting:\n"
            f"{server.log_tail()}"
        )
    try:
        return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def run_prometheus(
    tmp_path: Path, scrape_target: str, scrape_interval_s: float = 1
) -> Iterator[PrometheusServer]:
    """Run Prometheus scraping ``scrape_target`` (``host:port``, path /metrics) until exit.

    Its config, data and log live under ``tmp_path / "prometheus"``; it listens on a free
    loopback port. The context is entered once Prometheus reports ready, and the process is
    always stopped on the way out.
    """
    home = tmp_path / "prometheus"
    home.mkdir()
    config_path = home / "prometheus.yml"
    _write_config(config_path, scrape_target, scrape_interval_s)
    (port,) = free_ports(1)
    log_path = home / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        try:
            wait_until(lambda: _is_ready(server), timeout=STARTUP_TIMEOUT_S, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(
                f"prometheus not ready within {STARTUP_TIMEOUT_S} s:\n{server.log_tail()}"
            ) from exc
        yield server
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
