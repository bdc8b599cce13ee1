"""SIGTERM drains: no new connections, but every accepted request is answered before exit."""

from __future__ import annotations

import socket
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support import process_alive, start_server, wait_until, worker_processes

REQUESTS = 16
HANDLER_SECONDS = 1


def _refuses_connections(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_in_flight_and_queued_requests(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path / "server", model_store)
    try:
        registered = httpx.post(
            server.management + "/models",
            params={"url": "probe.mar", "initial_workers": 2, "batch_size": 4},
            timeout=60,
        )
        assert registered.status_code == 200, registered.text
        workers = [process.pid for process in worker_processes(server)]
        assert len(workers) == 2
        url = f"{server.inference}/predictions/probe"
        markers = [tmp_path / f"started-{index}" for index in range(REQUESTS)]

        def post(index: int) -> httpx.Response:
            body = {"touch": str(markers[index]), "sleep": HANDLER_SECONDS, "echo": index}
            return httpx.post(url, json=body, timeout=60)

        with ThreadPoolExecutor(REQUESTS) as pool:
            answers: list[Future[httpx.Response]] = [
                pool.submit(post, index) for index in range(REQUESTS)
            ]

            def accepted() -> tuple[int, int] | None:
                """(started, queued) once every request is in a batch or in the queue."""
                described = httpx.get(f"{server.management}/models/probe", timeout=10).json()
                queued = described[0]["jobQueueStatus"]["pendingRequests"]
                started = sum(marker.exists() for marker in markers)
                return (started, queued) if started + queued == REQUESTS else None

            _, queued = wait_until(accepted, timeout=10)
            assert queued > 0, "nothing was queued: the test would not cover the queue"
            server.process.terminate()

            wait_until(lambda: _refuses_connections(server.inference), timeout=5)
            still_running = sum(not answer.done() for answer in answers)
            assert still_running > 0, "the drain finished before new connections were refused"
            for index, answer in enumerate(answers):
                response = answer.result(timeout=30)
                assert response.status_code == 200, (index, response.text)
                assert response.json()["echo"] == index

        assert all(marker.exists() for marker in markers)
        assert server.process.wait(30) == 0, server.log()
    except BaseException:
        if server.process.poll() is None:
            server.process.kill()
        raise
    finally:
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
    wait_until(lambda: not any(process_alive(pid) for pid in workers), timeout=10)
    assert not (tmp_path / "server" / "runtime" / str(server.process.pid)).exists()


def test_drain_timeout_bounds_the_wait_for_a_request_that_takes_longer(
    tmp_path: Path, model_store: Path
) -> None:
    """A container runtime kills what outlives its stop timeout (Docker: 10 s): the drain is
    bounded by drain_timeout, then the workers are stopped and the server exits 0."""
    server = start_server(
        tmp_path / "server", model_store, models=["probe=probe.mar"], config={"drain_timeout": "1"}
    )
    marker = tmp_path / "started"
    try:
        with ThreadPoolExecutor(1) as pool:
            body = {"touch": str(marker), "sleep": 600}
            url = f"{server.inference}/predictions/probe"
            answer = pool.submit(httpx.post, url, json=body, timeout=900)
            wait_until(marker.exists, timeout=60)
            workers = [process.pid for process in worker_processes(server)]
            server.process.terminate()
            # Unbounded, the server would wait out the handler's 600 s.
            assert server.process.wait(60) == 0, server.log()
            # The client is not left hanging: its connection ends with the server.
            with pytest.raises(httpx.HTTPError):
                answer.result(timeout=60).raise_for_status()
    finally:
        if server.process.poll() is None:
            server.process.kill()
    wait_until(lambda: not any(process_alive(pid) for pid in workers), timeout=30)
