"""Starting, driving and always stopping a real ``modelserve`` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_DEADLINE_S = 60
REGISTER_TIMEOUT_S = 180
HEALTHY_DEADLINE_S = 60
STOP_DEADLINE_S = 30
POLL_S = 0.1
LOG_TAIL_CHARS = 4000


class ServerError(RuntimeError):
    """The server did not start, register a model, or answer as expected."""


@dataclass(frozen=True)
class Server:
    """A running ``modelserve start --foreground`` and where its planes listen."""

    process: subprocess.Popen
    inference: str
    management: str
    log_path: Path
    grpc_inference: str  # host:port of the gRPC inference services

    def log_tail(self) -> str:
        """The end of what the server printed, for error messages."""
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def fail(self, message: str) -> ServerError:
        """An error carrying ``message`` and the server's log tail."""
        return ServerError(f"{message}\n--- server log (tail) ---\n{self.log_tail()}")


def free_loopback_ports(count: int) -> list[int]:
    """Ports the kernel handed out a moment ago; all held at once so they differ."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_config(
    workdir: Path, model_store: Path, settings: Mapping[str, object] | None = None
) -> tuple[Path, list[str]]:
    """A ``config.properties`` on free loopback ports, with ``settings`` added; returns it, the
    three plane URLs and the gRPC inference target."""
    ports = free_loopback_ports(5)
    urls = [f"http://127.0.0.1:{port}" for port in ports[:3]]
    properties = {
        "inference_address": urls[0],
        "management_address": urls[1],
        "metrics_address": urls[2],
        "grpc_inference_port": ports[3],
        "grpc_management_port": ports[4],
        "model_store": model_store,
        "runtime_dir": workdir / "runtime",
        **(settings or {}),
    }
    config = workdir / "config.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return config, [*urls, f"127.0.0.1:{ports[3]}"]


def _ping(server: Server) -> str | None:
    """The health status /ping reports, or None while the server does not answer."""
    try:
        response = httpx.get(server.inference + "/ping", timeout=2)
    except httpx.TransportError:
        return None
    return response.json().get("status")


def _wait_for(server: Server, accept: set[str] | None, deadline_s: float, what: str) -> None:
    """Poll /ping until it reports a status in ``accept`` (any status when None)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if server.process.poll() is not None:
            raise server.fail(f"server exited with {server.process.returncode} {what}")
        status = _ping(server)
        if status is not None and (accept is None or status in accept):
            return
        if time.monotonic() > deadline:
            raise server.fail(f"server not {what} after {deadline_s} s (last /ping: {status})")
        time.sleep(POLL_S)


def cpu_seconds(server: Server) -> tuple[float, float] | None:
    """CPU time (user + system, s) the frontend and, summed, its worker processes have used so
    far; None where /proc cannot tell (not Linux). A worker that exits takes its time along."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(pid: int) -> float:
        # Fields after the command name, which may hold spaces, in parentheses: utime and
        # stime are the 14th and 15th of the whole line.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / tick

    pid = server.process.pid
    try:
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        frontend = used(pid)
        workers = 0.0
        for child in children:
            try:
                workers += used(child)
            except FileNotFoundError:  # exited since it was listed
                continue
    except OSError:
        return None
    return frontend, workers


def stop(server: Server) -> int:
    """SIGTERM, then SIGKILL after ``STOP_DEADLINE_S``; returns the exit code."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def running_server(
    workdir: Path, model_store: Path, settings: Mapping[str, object] | None = None
) -> Iterator[Server]:
    """Start the server on free loopback ports, with the ``settings`` (config.properties keys)
    given; it is stopped on leaving, whatever happened."""
    workdir.mkdir(parents=True, exist_ok=True)
    config, urls = write_config(workdir, model_store, settings)
    command = [sys.executable, "-m", "modelserve.cli", "start", "--foreground"]
    command += ["--ts-config", str(config)]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(process, urls[0], urls[1], log_path, urls[3])
    try:
        _wait_for(server, None, START_DEADLINE_S, "answering /ping")
        yield server
    finally:
        code = stop(server)
        if code != 0:
            # Not fatal to the measurements taken, but a clean shutdown is part of serving.
            print(
                f"warning: server exited with {code} after SIGTERM\n{server.log_tail()}",
                file=sys.stderr,
            )


def register(
    server: Server,
    archive: str,
    *,
    batch_size: int,
    max_batch_delay_ms: int,
    workers: int = 1,
    name: str | None = None,
) -> None:
    """Register ``archive`` (as ``name`` when given) and wait until its workers have loaded it."""
    params = {
        "url": archive,
        "initial_workers": workers,
        "batch_size": batch_size,
        "max_batch_delay": max_batch_delay_ms,
        "synchronous": "true",
    }
    if name is not None:
        params["model_name"] = name
    response = httpx.post(server.management + "/models", params=params, timeout=REGISTER_TIMEOUT_S)
    if response.status_code != 200:
        raise server.fail(f"registering {archive}: HTTP {response.status_code} {response.text}")


def unregister(server: Server, name: str) -> None:
    """Unregister model ``name``, waiting until its workers have stopped."""
    response = httpx.delete(f"{server.management}/models/{name}", timeout=REGISTER_TIMEOUT_S)
    if response.status_code != 200:
        raise server.fail(f"unregistering {name}: HTTP {response.status_code} {response.text}")


def wait_healthy(server: Server) -> None:
    """Wait until /ping reports every registered model as served."""
    _wait_for(server, {"Healthy"}, HEALTHY_DEADLINE_S, "Healthy")


def warm_up(server: Server, model: str, body: bytes, content_type: str, count: int) -> bytes:
    """Send ``count`` requests one after another; returns the last response body.

    Lazy first-call costs (TorchScript's profiling runs, allocator growth, imports) stay out
    of the measured runs, and a misconfigured request fails here with the server's answer.
    """
    url = f"{server.inference}/predictions/{model}"
    headers = {"Content-Type": content_type}
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            response = client.post(url, content=body, headers=headers)
            if response.status_code != 200:
                raise server.fail(f"{model}: HTTP {response.status_code} {response.text}")
    return response.content
