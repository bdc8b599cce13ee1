"""Test support: build archives with the real archiver, run the real server, wait on conditions."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
import psutil
from modelserve_archiver.builder import build_archive
from modelserve_archiver.options import ArchiveOptions
from prometheus_client.parser import text_string_to_metric_families

FIXTURES = Path(__file__).parent / "fixtures"
HANDLERS = FIXTURES / "handlers"
T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


def free_ports(count: int) -> list[int]:
    """Ports that were free a moment ago on loopback."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def build_test_archive(
    store: Path,
    name: str,
    handler: str,
    version: str = "1.0",
    *,
    extra_files: list[Path] | None = None,
    config_file: Path | None = None,
    archive_format: str = "default",
) -> Path:
    """Pack a fixture handler into ``store`` with our model-archiver."""
    options = ArchiveOptions(
        model_name=name,
        version=version,
        handler=str(HANDLERS / handler),
        extra_files=[str(path) for path in extra_files or []],
        config_file=str(config_file) if config_file else None,
        export_path=store,
        archive_format=archive_format,
        force=True,
    )
    return build_archive(options)


@dataclass
class RunningServer:
    """A modelserve process started by a test."""

    process: subprocess.Popen
    inference: str
    management: str
    metrics: str
    log_path: Path
    # gRPC "host:port" targets (inference: TorchServe + KServe v2 services; management).
    grpc_inference: str = ""
    grpc_management: str = ""

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    workdir: Path,
    model_store: Path,
    models: list[str] | None = None,
    config: dict[str, str] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    command: tuple[str, ...] = ("start", "--foreground"),
) -> RunningServer:
    """Start ``modelserve start --foreground`` (or another serving ``command``, e.g.
    ``("paddle", "web_service.py")``) on free loopback ports and wait until it serves.

    ``args`` are further flags, e.g. ``["--ncs"]``; ``env`` adds environment variables.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(5)
    properties = {
        "inference_address": f"http://127.0.0.1:{ports[0]}",
        "management_address": f"http://127.0.0.1:{ports[1]}",
        "metrics_address": f"http://127.0.0.1:{ports[2]}",
        "grpc_inference_port": str(ports[3]),
        "grpc_management_port": str(ports[4]),
        "model_store": str(model_store),
        "runtime_dir": str(workdir / "runtime"),
        **(config or {}),
    }
    # Clients reach an all-interfaces listener through loopback.
    urls = [
        properties[f"{plane}_address"].replace("0.0.0.0", "127.0.0.1")
        for plane in ("inference", "management", "metrics")
    ]
    config_path = workdir / "config.properties"
    config_path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    argv = [sys.executable, "-m", "modelserve.cli", *command]
    argv += ["--ts-config", str(config_path), *(args or [])]
    if models:
        argv += ["--models", *models]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )
    grpc_targets = [
        f"{_client_host(properties.get(f'grpc_{plane}_address', '127.0.0.1'))}:"
        f"{properties[f'grpc_{plane}_port']}"
        for plane in ("inference", "management")
    ]
    server = RunningServer(process, *urls, log_path, *grpc_targets)

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
        return "Model server started." in server.log()

    wait_until(serving, timeout=60)
    return server


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """``modelserve ARGS`` run to its end in ``cwd``, output captured; ``env`` adds variables."""
    return subprocess.run(
        [sys.executable, "-m", "modelserve.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _client_host(host: str) -> str:
    """Where a client reaches a listener on ``host``: loopback for an all-interfaces one."""
    if host in ("0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def ready_workers(server: RunningServer, model: str, version: str | None = None) -> int:
    """How many workers of a model version are READY, per the describe API."""
    path = f"/models/{model}" + (f"/{version}" if version else "")
    response = httpx.get(server.management + path)
    if response.status_code != 200:
        return 0
    return sum(worker["status"] == "READY" for worker in response.json()[0]["workers"])


class ServesMetrics(Protocol):
    """A server under test: where its metrics plane listens."""

    metrics: str


def gauge(server: ServesMetrics, name: str, **labels: str) -> float | None:
    """The sample of gauge ``name`` with ``labels`` on the server's /metrics, if any."""
    text = httpx.get(server.metrics + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def queue_depth(server: ServesMetrics, model: str) -> float | None:
    """A model's ``modelserve_queue_depth`` gauge (requests waiting for a worker), per /metrics."""
    return gauge(server, "modelserve_queue_depth", model_name=model)


def scrape(server: RunningServer, names: list[str] | None = None) -> dict[tuple, float]:
    """Every sample of /metrics (those of ``names`` when given) as
    {(sample name, sorted labels): value}."""
    params = [("name[]", name) for name in names or []]
    response = httpx.get(server.metrics + "/metrics", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict[tuple, float], name: str, **labels: str) -> float | None:
    """One sample of a ``scrape``; None when that series does not exist."""
    return samples.get((name, tuple(sorted(labels.items()))))


def pipeline_samples(server: RunningServer, pipeline: str, platform: str) -> dict[tuple, float]:
    """The samples of one pipeline's metrics (``modelserve_pipeline_*``) as {(sample name,
    sorted labels less the pipeline's own): value}."""
    own = {"pipeline": pipeline, "platform": platform, "hostname": socket.gethostname()}
    samples = {}
    for (name, labels), value in scrape(server).items():
        rest = dict(labels)
        if name.startswith("modelserve_pipeline_") and all(
            rest.pop(key, None) == wanted for key, wanted in own.items()
        ):
            samples[(name, tuple(sorted(rest.items())))] = value
    return samples


def request_counts(server: RunningServer, model: str) -> dict[str, int]:
    """The requests a model (its default version) answered and failed, and the batches it
    executed, per its Triton statistics."""
    response = httpx.get(f"{server.inference}/v2/models/{model}/stats", timeout=30)
    assert response.status_code == 200, response.text
    (entry,) = response.json()["model_stats"]
    return {
        "success": entry["inference_stats"]["success"]["count"],
        "fail": entry["inference_stats"]["fail"]["count"],
        "executions": entry["execution_count"],
    }


def send_and_leave(base_url: str, path: str, body: bytes, content_type: str) -> socket.socket:
    """A connection that has sent ``POST path`` to the server at ``base_url`` and reads no
    answer: close it to be the client that goes away."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(head.encode() + body)
    return connection


def process_alive(pid: int) -> bool:
    """Whether a process runs: a zombie (exited, not reaped by whoever inherited it) does not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def worker_processes(server: RunningServer) -> list[psutil.Process]:
    """The live worker processes (``python -m modelserve.worker``) serving the server's models;
    a spare worker counts once it has been handed a model."""
    return [process for process in _worker_children(server) if not _waiting_spare(process)]


def waiting_spares(server: RunningServer) -> list[psutil.Process]:
    """The server's spare workers that wait for a model (``modelserve.worker --spare``)."""
    return [process for process in _worker_children(server) if _waiting_spare(process)]


def ready_spare_pids(server: RunningServer) -> list[int]:
    """The pids of the spare workers the server's log reports ready, oldest first."""
    return [int(pid) for pid in re.findall(r"spare worker \(pid (\d+)\) ready", server.log())]


def _worker_children(server: RunningServer) -> list[psutil.Process]:
    try:
        children = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    workers = []
    for child in children:
        try:
            if "modelserve.worker" in child.cmdline() and process_alive(child.pid):
                workers.append(child)
        except psutil.Error:  # exited while we looked
            continue
    return workers


def _waiting_spare(process: psutil.Process) -> bool:
    """Whether a worker process is a spare still waiting: it moves from its own ``spare``
    directory to its model's when it is handed one."""
    try:
        return "--spare" in process.cmdline() and Path(process.cwd()).name == "spare"
    except psutil.Error:  # exited while we looked
        return False
