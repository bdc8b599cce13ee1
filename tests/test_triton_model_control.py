"""Triton's model control modes on a real server: poll follows the repository (a new version
loads and the old one retires by policy, with not one request failing under load; a changed
config reloads, a broken change keeps the old one serving, a removed model unloads); explicit
loads what it is told, through tritonclient's repository calls; none refuses them."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from framework_models import save_onnx_pair
from support import RunningServer, start_server, wait_until
from triton_fixtures import add_version, pair_config
from tritonclient.utils import InferenceServerException

A = np.array([[1, 2, 3, 4]], dtype=np.float32)
B = np.array([[10, 20, 30, 40]], dtype=np.int64)
# About 20 ms of work per request on one core, so that requests queue behind the worker.
BUSY_MATMULS = 8
CLIENTS = 8


def _config(max_batch_size: int) -> str:
    return pair_config(max_batch_size, "dynamic_batching { }\n")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = save_onnx_pair(tmp_path_factory.mktemp("onnx"))
    return path


def _ready(server: RunningServer, path: str) -> int:
    return httpx.get(f"{server.inference}/v2/models/{path}").status_code


def _infers(server: RunningServer) -> bool:
    client = triton.InferenceServerClient(server.inference.removeprefix("http://"))
    inputs = [triton.InferInput("a", [1, 4], "FP32"), triton.InferInput("b", [1, 4], "INT64")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    result = client.infer("pair", inputs)
    client.close()
    return bool(np.array_equal(result.as_numpy("sum"), A + B))


def _max_batch_size(server: RunningServer) -> int | None:
    """The served config's max_batch_size; None while no version serves (mid-reload)."""
    response = httpx.get(f"{server.inference}/v2/models/pair/config")
    return response.json()["max_batch_size"] if response.status_code == 200 else None


def test_poll_follows_the_repository(tmp_path: Path, onnx_file: Path, model_store: Path) -> None:
    repository = tmp_path / "repository"
    model = repository / "pair"
    add_version(model, "1", onnx_file)
    (model / "config.pbtxt").write_text(_config(8))
    poll = ["--model-control-mode", "poll", "--repository-poll-secs", "0.2"]
    server = start_server(
        tmp_path / "server", model_store, args=["--model-repository", str(repository), *poll]
    )
    try:
        wait_until(lambda: _ready(server, "pair/versions/1/ready") == 200, timeout=60)

        # A new version loads, then version 1 retires (the default policy: latest 1).
        add_version(model, "2", onnx_file)
        wait_until(lambda: _ready(server, "pair/versions/1/ready") == 404, timeout=60)
        assert _ready(server, "pair/versions/2/ready") == 200
        assert _infers(server)

        # A changed config reloads the model.
        (model / "config.pbtxt").write_text(_config(4))
        wait_until(lambda: _max_batch_size(server) == 4, timeout=60)

        # A broken change is told once, and the model serves as it was.
        (model / "config.pbtxt").write_text("optimization { }")
        wait_until(lambda: "optimization" in server.log(), timeout=60)
        assert _max_batch_size(server) == 4 and _infers(server)

        # A removed model unloads.
        shutil.rmtree(model)
        wait_until(lambda: _ready(server, "pair") == 404, timeout=60)
    finally:
        server.stop()
    assert server.log().count('has no field named "optimization"') == 1


def test_poll_swaps_versions_under_load_without_failing_a_request(
    tmp_path: Path, model_store: Path
) -> None:
    # One worker taking one request at a time (no dynamic batching) keeps requests queued on
    # version 1 while version 2 takes over: those must still be answered.
    busy, _ = save_onnx_pair(tmp_path, busy_matmuls=BUSY_MATMULS)
    model = tmp_path / "repository" / "pair"
    add_version(model, "1", busy)
    (model / "config.pbtxt").write_text(pair_config(8))
    poll = ["--model-control-mode", "poll", "--repository-poll-secs", "0.2"]
    server = start_server(
        tmp_path / "server", model_store, args=["--model-repository", str(model.parent), *poll]
    )
    body = {
        "inputs": [
            {"name": "a", "shape": [1, 4], "datatype": "FP32", "data": A[0].tolist()},
            {"name": "b", "shape": [1, 4], "datatype": "INT64", "data": B[0].tolist()},
        ]
    }
    answers: list[tuple[int, str]] = []  # (HTTP status, the version that answered or why not)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                response = http.post(f"{server.inference}/v2/models/pair/infer", json=body)
                if response.status_code != 200:
                    answers.append((response.status_code, response.text))
                    continue
                answer = response.json()
                outputs = {output["name"]: output["data"] for output in answer["outputs"]}
                right = outputs["sum"] == (A + B)[0].tolist()
                answers.append((200, answer["model_version"] if right else f"wrong {outputs}"))

    try:
        wait_until(lambda: _ready(server, "pair/versions/1/ready") == 200, timeout=60)
        with ThreadPoolExecutor(CLIENTS) as pool:
            clients = [pool.submit(client) for _ in range(CLIENTS)]
            try:
                wait_until(lambda: len(answers) >= CLIENTS, timeout=60)
                add_version(model, "2", busy)
                wait_until(lambda: _ready(server, "pair/versions/1/ready") == 404, timeout=60)
                wait_until(lambda: (200, "2") in answers, timeout=60)
            finally:
                stop.set()
            for finished in clients:
                finished.result()
    finally:
        server.stop()
    assert [answer for answer in answers if answer[1] not in ("1", "2")] == []
    assert {version for _, version in answers} == {"1", "2"}


@pytest.fixture
def explicit(tmp_path: Path, onnx_file: Path, model_store: Path) -> RunningServer:
    repository = tmp_path / "repository"
    for name in ("pair", "other"):
        add_version(repository / name, "1", onnx_file)
    (repository / "pair" / "config.pbtxt").write_text(_config(8))
    args = ["--model-repository", str(repository), "--model-control-mode", "explicit"]
    return start_server(tmp_path / "server", model_store, args=[*args, "--load-model", "pair"])


def test_explicit_loads_what_it_is_told(explicit: RunningServer) -> None:
    client = triton.InferenceServerClient(explicit.inference.removeprefix("http://"))
    try:
        wait_until(lambda: _ready(explicit, "pair/ready") == 200, timeout=60)
        assert not client.is_model_ready("other")  # not asked for at start
        assert [entry["name"] for entry in client.get_model_repository_index()] == ["pair"]

        client.load_model("other")
        assert client.is_model_ready("other")

        # A configuration given with the load is used instead of config.pbtxt.
        override = json.loads(json.dumps(client.get_model_config("pair")))
        override["max_batch_size"] = 2
        client.load_model("pair", config=json.dumps(override))
        assert client.get_model_config("pair")["max_batch_size"] == 2
        assert _infers(explicit)

        client.unload_model("pair")
        assert _ready(explicit, "pair") == 404
        with pytest.raises(InferenceServerException, match="no model nope"):
            client.load_model("nope")
        with pytest.raises(InferenceServerException, match="not valid"):
            client.load_model("other", config='{"max_batch_size": "many"}')
        assert client.is_model_ready("other")  # the bad load left it serving
    finally:
        client.close()
        explicit.stop()


def test_none_mode_refuses_the_repository_calls(
    tmp_path: Path, onnx_file: Path, model_store: Path
) -> None:
    repository = tmp_path / "repository"
    add_version(repository / "pair", "1", onnx_file)
    server = start_server(tmp_path / "s", model_store, args=["--model-repository", str(repository)])
    try:
        refused = httpx.post(f"{server.inference}/v2/repository/models/pair/load")
        assert refused.status_code == 400
        assert "model control mode is none" in refused.json()["error"]
        unload = httpx.post(f"{server.inference}/v2/repository/models/pair/unload", json=[])
        assert unload.status_code == 400 and "JSON object" in unload.json()["error"]
    finally:
        server.stop()
