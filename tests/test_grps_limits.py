"""grps's serving limits and switches (issue 20): ``max_concurrency`` (in-flight requests in the
model; more wait), ``max_connections`` (more in flight in all: 503), dynamic batching from
grpst's flags, and the online/offline drain switch with requests in flight.

No timing is relied on: workers are held (a handler waiting for a file, or SIGSTOP) until the
waiting requests show in /metrics, then let go.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grps_support import GrpsServer, grps_serve, save_summary_torchscript, torch_answer
from support import build_test_archive, gauge, queue_depth, start_server, wait_until

from modelserve.grps.proto import grps_pb2 as pb
from modelserve.grps.proto import grps_pb2_grpc as pb_grpc

WAITING = "modelserve_inference_waiting"
ROWS = (np.arange(40, dtype=np.float32).reshape(10, 1, 4) - 20) / 8


def _grps_predict(inference: str, body: dict) -> httpx.Response:
    return httpx.post(f"{inference}/grps/v1/infer/predict", json=body, timeout=120)


def _waiting(server: object) -> float:
    return gauge(server, WAITING) or 0.0  # type: ignore[arg-type]


def test_max_concurrency_lets_two_requests_into_the_handler_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    build_test_archive(store, "probe", "concurrency_probe.py")
    workers = json.dumps({"probe": {"1.0": {"minWorkers": 4, "maxWorkers": 4}}})
    config = {"max_concurrency": "2", "max_connections": "10", "models": workers}
    server = start_server(tmp_path / "server", store, ["probe=probe.mar"], config=config)
    marks = tmp_path / "marks"
    marks.mkdir()
    body = {"model": "probe", "str_data": json.dumps({"dir": str(marks)})}
    try:
        wait_until(lambda: httpx.get(f"{server.inference}/ping").json()["status"] == "Healthy")
        with ThreadPoolExecutor(10) as pool:
            try:
                running = [pool.submit(_grps_predict, server.inference, body) for _ in range(10)]
                # Two are in the handler (four workers could take four); eight wait for a slot.
                wait_until(lambda: len(list(marks.glob("inside-*"))) == 2 and _waiting(server) == 8)
                refused = _grps_predict(server.inference, body)  # over max_connections
            finally:
                (marks / "release").touch()
            answers = [future.result() for future in running]
    finally:
        server.stop()
    assert refused.status_code == 503, refused.text
    assert refused.json()["status"]["status"] == "FAILURE"
    assert "max_connections=10" in refused.json()["status"]["msg"]
    assert [answer.status_code for answer in answers] == [200] * 10
    inside = [int(line) for line in (marks / "inside.log").read_text().split()]
    assert len(inside) == 10 and max(inside) == 2


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    return save_summary_torchscript(tmp_path_factory.mktemp("summary"))


@pytest.fixture(scope="module")
def batching(
    tmp_path_factory: pytest.TempPathFactory, summary: tuple[Path, object]
) -> Iterator[GrpsServer]:
    """torch_serve with grps's dynamic batching, as its docs deploy it."""
    model, _ = summary
    flags = ["--batching_type", "dynamic", "--max_batch_size", "16", "--batch_timeout_us", "2000"]
    server = grps_serve(tmp_path_factory.mktemp("batching"), "torch_serve", model, *flags)
    yield server
    server.stop()


def _rows(server: GrpsServer, rows: np.ndarray) -> list[httpx.Response]:
    """Each row a request of its own, sent at once, while the model's worker is stopped."""
    (pid,) = server.worker_pids("summary")
    with ThreadPoolExecutor(len(rows)) as pool:
        os.kill(pid, signal.SIGSTOP)
        try:
            running = [pool.submit(server.predict, {"ndarray": row.tolist()}) for row in rows]
            # One request went to the stopped worker; the rest queue behind it.
            wait_until(lambda: queue_depth(server, "summary") == len(rows) - 1, 60)
        finally:
            os.kill(pid, signal.SIGCONT)
        return [future.result() for future in running]


def test_dynamic_batching_runs_queued_requests_together(
    batching: GrpsServer, summary: tuple[Path, object]
) -> None:
    _, module = summary
    answers = _rows(batching, ROWS)
    for row, answer in zip(ROWS, answers, strict=True):
        assert answer.status_code == 200, answer.text
        (tensor,) = answer.json()["gtensors"]["tensors"]
        assert np.allclose(tensor["flat_float32"], torch_answer(module, row).ravel(), atol=1e-6)
    stats = httpx.get(f"{batching.http}/v2/models/summary/stats", timeout=30).json()
    batches = stats["model_stats"][0]["batch_stats"]
    assert max(entry["batch_size"] for entry in batches) == len(ROWS) - 1


def test_offline_drains_readiness_while_requests_in_flight_finish(batching: GrpsServer) -> None:
    ready = f"{batching.http}/grps/v1/health/ready"
    channel = grpc.insecure_channel(batching.grpc_target)
    stub = pb_grpc.GrpsServiceStub(channel)
    assert httpx.get(ready).status_code == 200
    (pid,) = batching.worker_pids("summary")
    try:
        with ThreadPoolExecutor(3) as pool:
            os.kill(pid, signal.SIGSTOP)
            try:
                rows = ROWS[:3]
                running = [pool.submit(batching.predict, {"ndarray": row.tolist()}) for row in rows]
                wait_until(lambda: queue_depth(batching, "summary") == 2, 60)
                offline = httpx.post(f"{batching.http}/grps/v1/health/offline")
                drained = httpx.get(ready)
                drained_grpc = stub.CheckReadiness(pb.GrpsMessage())
                live = httpx.get(f"{batching.http}/grps/v1/health/live")
            finally:
                os.kill(pid, signal.SIGCONT)
            answers = [future.result() for future in running]
        # Offline, a request is still served: the switch only drains load balancers.
        served_offline = batching.predict({"ndarray": ROWS[0].tolist()})
        online = stub.Online(pb.GrpsMessage())
        back = httpx.get(ready)
    finally:
        httpx.get(f"{batching.http}/grps/v1/health/online")
        channel.close()
    assert offline.json() == {"status": {"code": 200, "msg": "OK", "status": "SUCCESS"}}
    assert drained.status_code == 503
    assert drained.json()["status"]["status"] == "FAILURE"
    assert "offline" in drained.json()["status"]["msg"]
    assert (drained_grpc.status.code, drained_grpc.status.status) == (503, pb.Status.FAILURE)
    assert live.status_code == 200
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert served_offline.status_code == 200
    assert (online.status.code, back.status_code) == (200, 200)


def test_max_concurrency_flags_hold_the_rest_out_of_the_model(
    tmp_path: Path, summary: tuple[Path, object]
) -> None:
    model, module = summary
    flags = ["--max_concurrency", "2", "--max_connections", "10"]
    server = grps_serve(tmp_path, "torch_serve", model, *flags)
    try:
        metadata = httpx.get(f"{server.http}/grps/v1/metadata/server").json()["str_data"]
        (pid,) = server.worker_pids("summary")
        with ThreadPoolExecutor(10) as pool:
            os.kill(pid, signal.SIGSTOP)
            try:
                running = [pool.submit(server.predict, {"ndarray": row.tolist()}) for row in ROWS]
                # Two went on to the model (its stopped worker holds them); eight wait.
                wait_until(lambda: _waiting(server) == 8)
                refused = server.predict({"ndarray": ROWS[0].tolist()})
            finally:
                os.kill(pid, signal.SIGCONT)
            answers = [future.result() for future in running]
    finally:
        server.stop()
    assert "max_concurrency: 2\nmax_connections: 10\n" in metadata
    assert refused.status_code == 503, refused.text
    for row, answer in zip(ROWS, answers, strict=True):
        assert answer.status_code == 200, answer.text
        (tensor,) = answer.json()["gtensors"]["tensors"]
        assert np.allclose(tensor["flat_float32"], torch_answer(module, row).ravel(), atol=1e-6)
