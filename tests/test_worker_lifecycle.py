"""Worker processes: crash and restart, scale-down that lets a batch finish, clean stop."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from support import RunningServer, ready_workers, start_server, wait_until


def _workers(server: RunningServer, model: str) -> list[dict]:
    return httpx.get(f"{server.management}/models/{model}", timeout=30).json()[0]["workers"]


def _post_in_thread(url: str, body: dict) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(httpx.post(url, json=body, timeout=60)))
    thread.start()
    return thread, answers


@pytest.fixture()
def probe(server: RunningServer):
    name = "lifecycle"
    response = httpx.post(
        server.management + "/models",
        params={"url": "probe.mar", "model_name": name, "initial_workers": 1},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    yield name
    httpx.delete(f"{server.management}/models/{name}", timeout=60)


def test_killed_worker_fails_its_batch_and_is_restarted(
    server: RunningServer, probe: str, tmp_path: Path
) -> None:
    [worker] = _workers(server, probe)
    marker = tmp_path / "in-flight"
    thread, answers = _post_in_thread(
        f"{server.inference}/predictions/{probe}", {"touch": str(marker), "sleep": 30}
    )
    wait_until(marker.exists)
    os.kill(worker["pid"], signal.SIGKILL)
    thread.join(timeout=5)
    assert not thread.is_alive(), "the request of a killed worker must end at once"
    [answer] = answers
    assert answer.status_code == 500
    assert answer.json()["type"] == "WorkerDiedException"
    assert "killed by signal 9" in answer.json()["message"]

    def restarted() -> bool:
        workers = _workers(server, probe)
        return (
            len(workers) == 1
            and workers[0]["status"] == "READY"
            and (workers[0]["pid"] != worker["pid"])
        )

    wait_until(restarted, timeout=30)
    assert httpx.post(f"{server.inference}/predictions/{probe}", json={}).status_code == 200


def test_scaling_down_lets_the_batch_in_flight_finish(
    server: RunningServer, probe: str, tmp_path: Path
) -> None:
    marker = tmp_path / "in-flight"
    thread, answers = _post_in_thread(
        f"{server.inference}/predictions/{probe}", {"touch": str(marker), "sleep": 1, "echo": 7}
    )
    wait_until(marker.exists)
    response = httpx.put(
        f"{server.management}/models/{probe}",
        params={"min_worker": 0, "max_worker": 0, "synchronous": "true"},
        timeout=60,
    )
    assert response.status_code == 200
    thread.join(timeout=30)
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json()["echo"] == 7
    wait_until(lambda: _workers(server, probe) == [])
    refused = httpx.post(f"{server.inference}/predictions/{probe}", json={})
    assert refused.status_code == 503


def test_stopping_the_server_stops_every_worker(tmp_path: Path, model_store: Path) -> None:
    server = start_server(tmp_path, model_store)
    response = httpx.post(
        server.management + "/models", params={"url": "probe.mar", "initial_workers": 2}, timeout=60
    )
    assert response.status_code == 200
    assert ready_workers(server, "probe") == 2
    pids = [worker["pid"] for worker in _workers(server, "probe")]
    assert server.stop() == 0
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in pids), timeout=10)
    assert not (tmp_path / "runtime" / str(server.process.pid)).exists()
